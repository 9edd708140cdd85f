"""What the user gave: interpreters, files, snapshots, models, values, signals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from envrepro.errors.base import EnvreproError


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


class UnsafeValueError(EnvreproError):
    """A value about to be written into a Dockerfile or a requirements file does not have its grammar.

    The snapshot is validated on load, so this is the second wall: a value that reaches it anyway (a Target
    built by other code, a customised template) is refused rather than written.
    """

    def __init__(self, what: str, value: str, rule: str) -> None:
        super().__init__(
            f"refusing to write {value} as {what}: {rule}",
            hint="the snapshot or option it came from is not valid: re-create it with `envrepro snapshot`",
        )
        self.what = what
        self.value = value
        self.rule = rule


RAW_HINT = "--raw takes an .npz with raw.0, raw.1, ... (one per argument of the function) or one array"


class PreprocessError(EnvreproError):
    """The preprocessing function could not be imported or run on the raw samples."""

    def __init__(self, function: str, kind: str, detail: str, output: Path | None = None) -> None:
        note = f" ({output} left as it was)" if output is not None else ""
        hint = RAW_HINT if kind == "raw" else "check that the function runs on the raw samples there"
        super().__init__(f"preprocessing {function}: {detail}{note}", hint=hint)
        self.function = function
        self.kind = kind
        self.detail = detail


class ReferenceMismatchError(EnvreproError):
    """A snapshot's reference files are not the ones it was written with (edited, or from another run)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path}: its reference files do not match the snapshot ({reason})",
            hint="record the snapshot and its references again with `envrepro snapshot`, "
            "and copy or commit the file and its .ref directory together",
        )
        self.path = path
        self.reason = reason


class ImageRefError(EnvreproError):
    """A value given as an image reference is not one (Docker's reference grammar)."""

    def __init__(self, option: str, value: str, rule: str) -> None:
        super().__init__(
            f"{option} {value!r} is not a valid image reference: {rule}",
            hint="e.g. myteam/model-serving:2024-06 (lowercase name; tag of letters, digits, '_', '.', '-')",
        )
        self.option = option
        self.value = value
        self.rule = rule


class EnvironmentSpecError(EnvreproError):
    """An environment to diff is not a snapshot file, `image:NAME:TAG` or `python:PATH`."""

    def __init__(self, spec: str, reason: str) -> None:
        super().__init__(
            f"{spec!r}: {reason}",
            hint="diff takes a snapshot file, image:NAME:TAG or python:PATH (an interpreter or environment)",
        )
        self.spec = spec
        self.reason = reason


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived. Deliberately not an EnvreproError: like Ctrl-C it unwinds every stage
    (each `finally` runs: containers and temporary files are removed) and ends with exit 128 + signum."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum = signum
        self.name = name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class DurationError(EnvreproError):
    """A duration flag is not a positive whole number of minutes, hours, days or weeks."""

    def __init__(self, text: str) -> None:
        super().__init__(
            f"{text!r} is not a duration",
            hint="write a whole number and a unit: 30m, 12h, 7d or 2w",
        )
        self.text = text
