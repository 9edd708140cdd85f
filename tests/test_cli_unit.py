"""The CLI's own policies without a daemon: colour codes, signals, the exit policy, error lines."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import CASES

from envrepro.cli import exit_code
from envrepro.console import error_line, make_console
from envrepro.errors import EnvreproError, Terminated
from envrepro.introspect import _last_line
from envrepro.signals import deferred_signals, terminate_on_signals

SNAPSHOT = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
ESC = b"\x1b"


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """`envrepro ARGS` with stdout and stderr piped (not a terminal), as in a CI log."""
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run(
        [sys.executable, "-m", "envrepro", *args], capture_output=True, env={**environ, **env}, check=False
    )


def test_piped_output_carries_no_colour_codes() -> None:
    shown = run_cli("show", str(SNAPSHOT))
    failed = run_cli("show", "/nonexistent/snapshot.json")
    assert shown.returncode == 0 and failed.returncode == 2
    for stream in (shown.stdout, shown.stderr, failed.stdout, failed.stderr):
        assert ESC not in stream
    assert failed.stderr.startswith(b"error: /nonexistent/snapshot.json: no such snapshot")


def test_no_color_removes_every_style_code_even_on_a_forced_terminal() -> None:
    coloured = run_cli("show", "/nonexistent/snapshot.json", FORCE_COLOR="1")
    assert ESC in coloured.stderr  # the forced terminal does get styles...
    plain = run_cli("show", "/nonexistent/snapshot.json", FORCE_COLOR="1", NO_COLOR="1")
    assert ESC not in plain.stderr  # ...and NO_COLOR takes all of them away, bold included
    assert b"error: /nonexistent/snapshot.json" in plain.stderr


@pytest.mark.parametrize(
    ("environ", "styled"), [({}, True), ({"NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, True)]
)
def test_a_terminal_console_styles_unless_no_color_is_set_and_not_empty(environ, styled) -> None:
    buffer = io.StringIO()
    console = make_console(file=buffer, force_terminal=True, environ=environ)
    error_line("it broke", "fix it", console=console)
    assert ("\x1b" in buffer.getvalue()) is styled
    assert "it broke" in buffer.getvalue() and "fix it" in buffer.getvalue()


def test_a_console_on_a_pipe_never_styles() -> None:
    buffer = io.StringIO()
    error_line("it broke", "fix it", console=make_console(file=buffer, environ={}))
    assert buffer.getvalue() == "error: it broke\nhint: fix it\n"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_unwind_like_ctrl_c_and_map_to_128_plus_signum(signum, code, capsys) -> None:
    cleaned: list[str] = []
    before = signal.getsignal(signum)
    with pytest.raises(Terminated) as caught:
        signal_a_stage(signum, cleaned)
    assert cleaned == ["finally ran"]
    assert isinstance(caught.value, KeyboardInterrupt)  # every Ctrl-C path (and `except Exception`) agrees
    assert signal.getsignal(signum) == before
    assert exit_code(caught.value) == code
    name = signal.Signals(signum).name
    assert capsys.readouterr().err.startswith(f"error: interrupted by {name}; containers and temporary files")


def signal_a_stage(signum: int, cleaned: list[str]) -> None:
    """A stage with a `finally` (as the container runner has), signalled while it runs."""
    with terminate_on_signals():
        try:
            os.kill(os.getpid(), signum)
            pytest.fail("the signal did not interrupt")
        finally:
            cleaned.append("finally ran")


def test_a_signal_during_a_deferred_step_arrives_when_the_step_is_done() -> None:
    steps: list[str] = []
    with pytest.raises(Terminated), terminate_on_signals():
        create_then_wait(steps)
    assert steps == ["created", "signal held back", "removed"]


def create_then_wait(steps: list[str]) -> None:
    """The container runner's shape: create (deferred), then wait; the finally removes what was created."""
    created = None
    try:
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            created = "container"
            steps.extend(["created", "signal held back"])
        pytest.fail("the held-back signal was not delivered when the step ended")
    finally:
        if created is not None:
            steps.append("removed")


def test_click_abort_from_a_signal_keeps_the_signals_exit_code(capsys) -> None:
    abort = click.exceptions.Abort()
    abort.__cause__ = Terminated(signal.SIGTERM, "SIGTERM")
    assert exit_code(abort) == 143
    assert exit_code(click.exceptions.Abort()) == 130
    assert exit_code(KeyboardInterrupt()) == 130
    assert exit_code(EnvreproError("bad input", hint="do this")) == 2
    err = capsys.readouterr().err
    assert "error: bad input\nhint: do this\n" in err


def test_an_unexpected_exception_is_not_swallowed() -> None:
    with pytest.raises(ZeroDivisionError):
        exit_code(ZeroDivisionError())


def test_last_line_is_the_last_non_blank_line_where_a_traceback_names_its_exception() -> None:
    traceback = 'Traceback (most recent call last):\n  File "x", line 1\nValueError: no\n\n'
    assert _last_line(traceback) == "ValueError: no"
    assert _last_line("  \n") == "no output"


def test_python_prefix_with_a_path_still_probes_that_interpreter(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "python"
    result = run_cli("diff", str(SNAPSHOT), f"python:{missing}")
    assert result.returncode == 2
    assert f"{missing} is not a usable Python interpreter".encode() in result.stderr
