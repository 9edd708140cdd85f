"""Progress without a daemon: the build stream of both engines, the line/JSON displays and their heartbeat
(an injected clock, no sleeping), and `envrepro build` on the fake engine writing flushed lines while the
build still runs; --render-only's assumption and --accept-python-patch."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CASES
from support.fake_engine import FakeEngine

import envrepro.build
import envrepro.cli
from envrepro.cli import main
from envrepro.console import err
from envrepro.engine_api import BuildEvent, BuildOutput, BuildStream, StageEvent
from envrepro.errors import BuildFailedError
from envrepro.progress import LineDisplay, Where, display_for, megabytes
from envrepro.target import Lock

STREAMS = CASES / "build-streams"
SNAPSHOT = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \+\d+\.\ds"
WHEEL = "Downloading tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_17_x86_64.whl (252.7 MB)"


def recorded(name: str) -> list[dict[str, Any]]:
    return json.loads((STREAMS / name).read_text())


def fold(messages: list[dict[str, Any]]) -> tuple[BuildStream, list[BuildEvent], list[str]]:
    events: list[BuildEvent] = []
    output: list[str] = []
    stream = BuildStream(events.append, lambda line: output.append(line.line))
    for message in messages:
        stream.feed(message)
    return stream, events, output


# --- Podman's build stream (recorded from podman 4.3's Docker-compatible API on this machine) -----------


def test_podman_steps_output_and_image_id_are_read() -> None:
    stream, events, output = fold(recorded("podman-ok.json"))
    assert [(e.step, e.total, e.cached) for e in events] == [(1, 3, False), (2, 3, False), (3, 3, False)]
    assert events[2].instruction == "RUN echo built > /b.txt && echo line2"
    assert output == ["line2"]  # COMMIT, `--> id`, `Successfully tagged docker.io/...` are bookkeeping
    assert stream.finish() == "sha256:010c641406bf6de42a203cbb28c473d5a29d64802bb1ce54c00813d3d0334cfd"


def test_podman_cache_hits_are_seen() -> None:
    _, events, _ = fold(recorded("podman-cached.json"))
    assert [(e.step, e.cached) for e in events if e.cached] == [(2, True), (3, True)]


def test_a_failing_podman_step_is_named_with_its_output() -> None:
    stream, _, _ = fold(recorded("podman-fail.json"))
    with pytest.raises(BuildFailedError) as caught:
        stream.finish()
    assert caught.value.step == "2/2"
    assert caught.value.instruction == "RUN echo about to fail && exit 3"
    assert "about to fail" in str(caught.value)


def test_docker_output_lines_skip_the_engines_bookkeeping() -> None:
    messages = [
        {"stream": "Step 1/2 : FROM base\n"},
        {"stream": " ---> 1234567890ab\n"},
        {"stream": "Step 2/2 : RUN pip install tensorflow-cpu\n"},
        {"stream": " ---> Running in 0123456789ab\n"},
        {"stream": WHEEL + "\n"},
        {"stream": "Removing intermediate container 0123456789ab\n"},
        {"stream": "Successfully built 1234567890ab\n"},
    ]
    _, events, output = fold(messages)
    assert [e.step for e in events] == [1, 2]
    assert output == [WHEEL]


# --- the line display and its heartbeat ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def line_display(json_lines: bool = False) -> tuple[LineDisplay, io.StringIO, Clock]:
    clock, stream = Clock(), io.StringIO()
    return LineDisplay(stream, json_lines=json_lines, clock=clock), stream, clock


def test_a_heartbeat_says_which_step_runs_for_how_long_and_its_last_output() -> None:
    display, stream, clock = line_display()
    display.on_event(StageEvent("build", "building envrepro:abc"))
    clock.now += 1
    display.on_event(BuildEvent(2, 9, "RUN pip install --require-hashes -r requirements.lock.txt"))
    clock.now += 2
    display.on_event(BuildOutput(WHEEL))
    clock.now += 10
    display.tick()  # 12 s since the last line: too early
    assert len(stream.getvalue().splitlines()) == 2
    clock.now += 3.5
    display.tick()
    clock.now += 5
    display.tick()  # 5 s after the heartbeat: nothing new
    clock.now += 11
    display.tick()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert re.fullmatch(rf"{STAMP} build: building envrepro:abc", lines[0])
    assert re.fullmatch(rf"{STAMP} build step 2/9: RUN pip install .*", lines[1])
    assert "step 2/9 RUN pip install" in lines[2] and "running for 16s" in lines[2]
    assert WHEEL in lines[2]
    assert "running for 32s" in lines[3]  # 31.5 s after the step began


def test_no_heartbeat_before_the_first_stage() -> None:
    display, stream, clock = line_display()
    clock.now += 100
    display.tick()
    assert stream.getvalue() == ""


def test_json_lines_parse_and_carry_every_field() -> None:
    display, stream, clock = line_display(json_lines=True)
    display.on_event(StageEvent("lock", "pinning 12 distributions"))
    clock.now += 20
    display.tick()
    display.on_event(StageEvent("build", "building envrepro:abc"))
    display.on_event(BuildEvent(1, 3, "FROM base"))
    display.on_event(BuildEvent(1, 3, "FROM base", cached=True))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["type"] for e in events] == ["stage", "heartbeat", "stage", "step", "step"]
    fields = {"type", "stage", "step", "total", "message", "elapsed", "timestamp"}
    assert all(fields <= set(e) for e in events)
    assert events[1]["stage"] == "lock" and events[1]["elapsed"] == 20.0
    assert "pinning 12 distributions: running for 20s" in events[1]["message"]
    assert (events[3]["step"], events[3]["total"], events[3]["message"]) == (1, 3, "FROM base")
    assert events[4]["cached"] is True


def test_downloads_add_up_from_pips_lines() -> None:
    assert megabytes(WHEEL) == pytest.approx(252.7)
    assert megabytes("Downloading six-1.16.0-py2.py3-none-any.whl (11 kB)") == pytest.approx(0.011)
    assert megabytes("Collecting six==1.16.0") == 0
    where = Where(started=0).after(BuildOutput(WHEEL), 1).after(BuildOutput(WHEEL), 2)
    assert where.downloaded_mb == pytest.approx(505.4)


def test_the_display_follows_the_options() -> None:
    from rich.console import Console

    piped = Console(file=io.StringIO())
    assert type(display_for(quiet=True, log_format="json", console=piped)).__name__ == "Quiet"
    assert isinstance(display_for(quiet=False, log_format="auto", console=piped), LineDisplay)
    assert display_for(quiet=False, log_format="json", console=piped).json_lines  # type: ignore[attr-defined]
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert type(display_for(quiet=False, log_format="auto", console=terminal)).__name__ == "LiveDisplay"


# --- `envrepro build` on the fake engine, through a stream that records what was flushed -----------------


class Pipe(io.StringIO):
    """stderr as a pipe's reader sees it: only what was flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = ""

    def flush(self) -> None:
        self.flushed = self.getvalue()


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeEngine, Pipe]:
    """`envrepro build` with the fake engine, a lock that needs no index, and stderr a recording pipe."""
    engine, pipe = FakeEngine(), Pipe()
    monkeypatch.setattr(envrepro.cli, "DockerEngine", lambda: engine)
    monkeypatch.setattr(envrepro.build, "compute_lock", lambda *_a, **_k: Lock(text="", requirements=()))
    monkeypatch.setattr(err, "_file", pipe)  # the CLI's stderr console (pytest's capture owns sys.stderr)
    return engine, pipe


def streaming_build(seen: list[str], pipe: Pipe) -> Callable[[], Iterator[dict[str, Any]]]:
    def messages() -> Iterator[dict[str, Any]]:
        for n, instruction in enumerate(["FROM base AS builder", "RUN pip install x", "FROM base"], 1):
            yield {"stream": f"Step {n}/3 : {instruction}\n"}
            yield {"stream": WHEEL + "\n"}
            seen.append(pipe.flushed)  # what a reader of the pipe has at this point of the build
        yield {"aux": {"ID": "sha256:" + "a" * 64}}

    return messages


def test_build_writes_flushed_timestamped_stage_and_step_lines_while_it_runs(fake_build, tmp_path) -> None:
    engine, pipe = fake_build
    seen: list[str] = []
    engine.build_messages = streaming_build(seen, pipe)()  # type: ignore[assignment]
    code = main(["build", "--snapshot", str(SNAPSHOT), "--out", str(tmp_path / "build")])
    assert code == 0
    assert re.search(rf"^{STAMP} build step 1/3: FROM base AS builder$", seen[0], re.MULTILINE)
    assert "step 2/3" not in seen[0]
    assert re.search(rf"^{STAMP} build step 2/3: RUN pip install x$", seen[1], re.MULTILINE)
    stages = re.findall(rf"^{STAMP} (\w+): ", seen[0], re.MULTILINE)
    assert stages == ["snapshot", "resolve", "lock", "render", "context", "build"]


def test_build_log_format_json_is_one_event_per_line(fake_build, monkeypatch, tmp_path) -> None:
    engine, pipe = fake_build
    engine.build_messages = streaming_build([], pipe)()  # type: ignore[assignment]
    monkeypatch.setattr(envrepro.build, "base_python_of", lambda _engine, _image: "3.11.2")  # a warning
    args = ["build", "--snapshot", str(SNAPSHOT), "--base-image", "base:1", "--out", str(tmp_path / "b")]
    assert main(["--log-format", "json", *args]) == 0
    events = [json.loads(line) for line in pipe.getvalue().splitlines()]  # every line is JSON
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2, 3]
    assert {e["stage"] for e in events} >= {"snapshot", "resolve", "lock", "render", "context", "build"}
    assert [e["message"] for e in events if e["type"] == "warning"] == [
        "base:1 runs Python 3.11.2, the snapshot Python 3.11.7 (patch level differs only)"
    ]


def test_quiet_build_prints_no_progress_but_errors_still_print(fake_build, tmp_path) -> None:
    engine, pipe = fake_build
    engine.build_messages = streaming_build([], pipe)()  # type: ignore[assignment]
    assert main(["-q", "build", "--snapshot", str(SNAPSHOT), "--out", str(tmp_path / "b")]) == 0
    assert pipe.getvalue() == ""
    engine.build_messages = [{"stream": "Step 1/1 : RUN false\n"}, {"error": "returned a non-zero code"}]
    assert main(["-q", "build", "--snapshot", str(SNAPSHOT), "--out", str(tmp_path / "b")]) != 0
    assert pipe.getvalue().startswith("error: ")
    assert not re.search(STAMP, pipe.getvalue())  # not one progress line


# --- what --render-only assumed, and the base's patch level accepted -------------------------------------


def test_render_only_says_which_base_python_it_assumed_and_why(fake_build, tmp_path) -> None:
    _, pipe = fake_build
    out = tmp_path / "b"
    assert main(["build", "--snapshot", str(SNAPSHOT), "--render-only", "--out", str(out)]) == 0
    assert (
        "--render-only: the image python:3.11.7-slim-bookworm was not inspected; assuming Python 3.11.7"
        in (" ".join(pipe.getvalue().split()))
    )
    base = "envrepro-test/python:3.11-bookworm"
    args = ["build", "--snapshot", str(SNAPSHOT), "--render-only", "--base-image", base, "--out", str(out)]
    assert main(args) == 0
    text = " ".join(pipe.getvalue().split())
    assert f"--render-only with --base-image {base}: the image {base} was not inspected; " in text
    assert "assuming Python 3.11.7 from the snapshot" in text


@pytest.mark.parametrize(
    ("extra", "environ", "warned"),
    [
        ([], {}, True),
        (["--accept-python-patch"], {}, False),
        ([], {"ENVREPRO_ACCEPT_PYTHON_PATCH": "1"}, False),
    ],
)
def test_the_base_pythons_patch_level_warning_can_be_accepted(
    fake_build, monkeypatch, tmp_path, extra: list[str], environ: dict[str, str], warned: bool
) -> None:
    engine, pipe = fake_build
    engine.build_messages = streaming_build([], pipe)()  # type: ignore[assignment]
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(envrepro.build, "base_python_of", lambda _engine, _image: "3.11.2")
    base = "envrepro-test/python:3.11-bookworm"
    args = ["build", "--snapshot", str(SNAPSHOT), "--base-image", base, "--out", str(tmp_path / "b"), *extra]
    assert main(args) == 0
    text = " ".join(pipe.getvalue().split())
    assert ("runs Python 3.11.2, the snapshot Python 3.11.7 (patch level differs only)" in text) is warned


def pip_files_in_readme() -> dict[str, str]:
    """The README's table of what `build/` holds: file -> when it is written."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### What `build/` holds", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| [^|]+ \| ([^|]+) \|$", section, re.MULTILINE)
    return {name: when.strip() for name, when in rows}


@pytest.mark.parametrize("credentials", [False, True])
def test_build_dir_holds_exactly_what_the_readme_lists(fake_build, tmp_path, credentials: bool) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    url = "https://user:s3cret@pypi.example/simple" if credentials else "https://pypi.example/simple"
    out = tmp_path / "build"
    args = ["build", "--snapshot", str(SNAPSHOT), "--render-only", "--out", str(out)]
    assert main([*args, "--pip-cert", str(ca), "--index-url", url]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    listed = pip_files_in_readme()
    expected = [name for name, when in listed.items() if not (credentials and "no credentials" in when)]
    assert written == sorted(expected)
    assert all("s3cret" not in p.read_text() for p in out.rglob("*") if p.is_file())
