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


class NotReproducibleError(EnvreproError):
    """Requirements not installable from an index (editable, local path, VCS) that were not excluded."""

    def __init__(self, blocked: Sequence[tuple[str, str]]) -> None:
        listed = "; ".join(
            f"{name} ({reason or 'not installable from an index'})" for name, reason in blocked
        )
        first = blocked[0][0] if blocked else "NAME"
        super().__init__(
            f"{len(blocked)} requirement(s) cannot be installed from a package index: {listed}",
            hint=f"publish them to an index (or build a wheel and add it to yours), or leave them out with "
            f"`--exclude {first}` (once per name) or `--exclude-unreproducible`",
        )
        self.blocked = tuple(blocked)


class LockError(EnvreproError):
    """pip-compile could not pin and hash the requirements."""

    def __init__(self, requirement: str | None, detail: str) -> None:
        subject = f"cannot lock {requirement}" if requirement else "cannot lock the requirements"
        super().__init__(
            f"{subject}: {detail}",
            hint="check that this version exists on your package index for the image's Python and platform; "
            "run with -v to see pip-compile's output",
        )
        self.requirement = requirement
        self.detail = detail


class LockEnvironmentError(EnvreproError):
    """The interpreter envrepro runs in cannot compute a lock for the image's Python and platform."""

    def __init__(self, wanted: str, found: str, hint: str) -> None:
        super().__init__(
            f"the lock must be computed for {wanted}, but envrepro runs on {found} "
            "(pip-tools resolves for the interpreter it runs in)",
            hint=hint,
        )
        self.wanted = wanted
        self.found = found


class ResolveError(EnvreproError):
    """A snapshot cannot be served by any image envrepro knows how to build, as asked."""


class UnsupportedPythonError(ResolveError):
    """The snapshot's Python is one its TensorFlow was never built for."""

    def __init__(self, tensorflow: str, python: str, supported: str, nearest: Sequence[str]) -> None:
        super().__init__(
            f"TensorFlow {tensorflow} was never built for Python {python} (it supports {supported})",
            hint="nearest combination that works: " + "; or ".join(nearest),
        )
        self.tensorflow = tensorflow
        self.python = python
        self.supported = supported
        self.nearest = tuple(nearest)


class RetiredBaseError(ResolveError):
    """The base image the snapshot needs is retired (deleted from its registry) or never existed."""

    def __init__(self, base_image: str, reason: str, nearest: str) -> None:
        super().__init__(
            f"base image {base_image} cannot be used: {reason}",
            hint=f"nearest combination that works: {nearest}; "
            "or pass --base-image with a copy of the image you still have",
        )
        self.base_image = base_image
        self.reason = reason
        self.nearest = nearest


class BasePythonMismatchError(ResolveError):
    """A --base-image runs another minor version of Python than the snapshot."""

    def __init__(self, base_image: str, base_python: str, snapshot_python: str) -> None:
        minor = ".".join(snapshot_python.split(".")[:2])
        super().__init__(
            f"base image {base_image} runs Python {base_python}, the snapshot Python {snapshot_python}: "
            "wheels built for one minor version do not install on another",
            hint=f"choose a base image with Python {minor}.x, or leave out --base-image",
        )
        self.base_image = base_image
        self.base_python = base_python
        self.snapshot_python = snapshot_python


class UnsupportedPlatformError(ResolveError):
    """The requested image platform is not one envrepro can lock wheels for."""

    def __init__(self, platform: str, supported: Sequence[str]) -> None:
        super().__init__(
            f"platform {platform!r} is not supported",
            hint="use one of: " + ", ".join(supported),
        )
        self.platform = platform
        self.supported = tuple(supported)


class TemplateNotFoundError(EnvreproError):
    """The Dockerfile templates are neither in the installed package nor in a source checkout."""

    def __init__(self, name: str, searched: Sequence[Path]) -> None:
        super().__init__(
            f"template {name} not found (looked in {', '.join(str(path) for path in searched)})",
            hint="reinstall envrepro; a wheel ships its templates under envrepro/templates",
        )
        self.name = name
        self.searched = tuple(searched)


class ImageInUseError(EnvreproError):
    """The engine refused to remove an image: a container (running or stopped) or a child image needs it."""

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(
            f"image {ref} is in use and was kept: {reason}",
            hint="remove the container (`docker rm`) or the image built on it first",
        )
        self.ref = ref
        self.reason = reason


class DurationError(EnvreproError):
    """A duration flag is not a positive whole number of minutes, hours, days or weeks."""

    def __init__(self, text: str) -> None:
        super().__init__(
            f"{text!r} is not a duration",
            hint="write a whole number and a unit: 30m, 12h, 7d or 2w",
        )
        self.text = text
