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


@pytest.mark.parametrize("module", NOT_FOR_PARITY)
def test_the_cli_and_parity_import_without(module: str) -> None:
    code = "import sys, envrepro.cli, envrepro.parity; print(sorted(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f"'{module}'" not in done.stdout
