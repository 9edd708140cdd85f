"""`envrepro parity` starts without what only other commands need (its fixed cost; bench/parity_bench.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

NOT_FOR_PARITY = (
    "jinja2",
    "piptools",
    "envrepro.build",
    "envrepro.lock",
    "envrepro.doctor",
    "envrepro.inventory",
    # the Docker SDK's ssh:// transport: paramiko's code runs only for an ssh:// engine (ssh_deferred.py)
    "paramiko.transport",
    "invoke",
    "cryptography",
    # parity imports NumPy while the image runs (parity.py), not on the way to the container's start
    "numpy",
)


def modules_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running `code`."""
    code += "\nimport sys; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def imported() -> list[str]:
    """The modules a fresh interpreter holds after importing the CLI and parity."""
    return modules_after("import envrepro.cli, envrepro.parity")


def test_the_cli_is_imported(imported: list[str]) -> None:
    assert "envrepro.cli" in imported and "envrepro.parity" in imported


@pytest.mark.parametrize("module", NOT_FOR_PARITY)
def test_the_cli_and_parity_import_without(module: str, imported: list[str]) -> None:
    assert module not in imported


def test_paramiko_loads_when_an_ssh_engine_first_uses_it() -> None:
    """What the SDK's ssh:// adapter and connect.py do with it: names looked up on `import paramiko`."""
    code = """
import sys, envrepro.engine, paramiko, docker.transport.sshconn as sshconn
from paramiko import SSHException
assert issubclass(SSHException, Exception)
assert sshconn.paramiko.SSHClient is paramiko.SSHClient is sys.modules["paramiko"].SSHClient
"""
    loaded = modules_after(code)
    assert "paramiko.transport" in loaded and "paramiko.client" in loaded


def test_the_cli_ends_without_collecting_what_lives_until_exit() -> None:
    """The interpreter's last garbage collection took ~0.1 s of every run (bench/parity_bench.py)."""
    code = """
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
sys.argv = ["envrepro", "schema", "snapshot"]
from envrepro.cli import run
run()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "frozen at exit: True"
