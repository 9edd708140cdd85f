"""Shared fixtures: real target environments with TensorFlow, real models saved by them, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

import envs

from envrepro.cli import main

SUPPORT = Path(__file__).parent / "support"
CASES = Path(__file__).parent / "cases"


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `envrepro ARGS` in-process through main(argv), as a user would see it."""

    def invoke(*args: str) -> CliResult:
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def plain_python() -> Path:
    """A real virtualenv with no TensorFlow (fast probe)."""
    return envs.ensure("plain")


@pytest.fixture(scope="session")
def tf_python() -> Path:
    """A real virtualenv with the current TensorFlow (tensorflow-cpu 2.21, Keras 3)."""
    return envs.ensure("tf-2.21.0")


@pytest.fixture(scope="session")
def tf215_python() -> Path:
    """A real virtualenv with TensorFlow 2.15.1 and Keras 2."""
    return envs.ensure("tf-2.15.1")


def _make_models(python: Path, outdir: Path) -> Path:
    subprocess.run(
        [str(python), str(SUPPORT / "make_models.py"), str(outdir)], check=True, capture_output=True
    )
    return outdir


@pytest.fixture(scope="session")
def tf_models(tf_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models saved by TF 2.21 / Keras 3: dense.{h5,keras}, dense_savedmodel/, custom.h5, ..."""
    return _make_models(tf_python, tmp_path_factory.mktemp("models-tf221"))


@pytest.fixture(scope="session")
def tf215_models(tf215_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same models saved by TF 2.15.1 / Keras 2."""
    return _make_models(tf215_python, tmp_path_factory.mktemp("models-tf215"))
