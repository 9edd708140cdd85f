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
)


@pytest.fixture(scope="module")
def imported() -> list[str]:
    """The modules a fresh interpreter holds after importing the CLI and parity."""
    code = "import sys, envrepro.cli, envrepro.parity; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_the_cli_is_imported(imported: list[str]) -> None:
    assert "envrepro.cli" in imported and "envrepro.parity" in imported


@pytest.mark.parametrize("module", NOT_FOR_PARITY)
def test_the_cli_and_parity_import_without(module: str, imported: list[str]) -> None:
    assert module not in imported
