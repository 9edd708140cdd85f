"""The one error root. Core code raises these; only the CLI turns them into a line, a hint and an exit code.

Exit codes: 2 for usage or input errors and anything that kept a command from running, 1 for a check that
ran and failed (parity), 0 for success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class EnvreproError(Exception):
    """Root of every error envrepro reports to a user."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InterpreterError(EnvreproError):
    """The target interpreter cannot be used."""

    def __init__(self, python: str, reason: str) -> None:
        super().__init__(
            f"{python} is not a usable Python interpreter: {reason}",
            hint="pass --python with the path of the training environment's python (e.g. .venv/bin/python)",
        )
        self.python = python
        self.reason = reason


class InputFileError(EnvreproError):
    """A file or directory given by the user is missing or unreadable."""

    def __init__(self, path: Path, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {reason}", hint=hint)
        self.path = path
        self.reason = reason


class OutputError(EnvreproError):
    """An output cannot be written."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}", hint="choose a writable output path (-o / --out)")
        self.path = path
        self.reason = reason


class SnapshotFormatError(EnvreproError):
    """A snapshot file is not a valid envrepro snapshot."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path} is not a valid envrepro snapshot: {reason}",
            hint="re-create it with `envrepro snapshot`",
        )
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class ModelProblem:
    """Why one model could not be fingerprinted or run."""

    path: str
    kind: str
    detail: str


_MODEL_HINTS = {
    "not_found": "check the path; a SavedModel is a directory with saved_model.pb",
    "corrupt": "the file is truncated or corrupt: copy it again from where training saved it",
    "custom_objects": "pass --custom-objects with the module (or .py file) that defines the custom layers",
    "unsafe": "the model needs Keras unsafe deserialization (e.g. a Lambda layer); "
    "pass --unsafe-deserialization only if you trust the file",
    "unsupported": "supported forms are .h5, .keras and SavedModel directories",
    "inputs": "pass --inputs FILE.npz with one array per model input",
}


class ModelError(EnvreproError):
    """One or more models could not be loaded or run."""

    def __init__(self, problems: Sequence[ModelProblem], *, note: str = "") -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"model {first.path}: {first.detail}{more}{note}", hint=_MODEL_HINTS.get(first.kind))
        self.problems = tuple(problems)


class CommandError(EnvreproError):
    """A subprocess failed. Carries the command, its exit code and its output."""

    def __init__(self, command: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        detail = "; ".join(tail) if tail else "no output"
        super().__init__(f"`{' '.join(command)}` exited with {returncode}: {detail}")
        self.command = tuple(command)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class ProbeError(EnvreproError):
    """The probe did not produce a record."""

    def __init__(self, python: str, detail: str) -> None:
        super().__init__(
            f"the environment probe failed in {python}: {detail}",
            hint="run with -v to see the probe's output",
        )
        self.python = python
        self.detail = detail
