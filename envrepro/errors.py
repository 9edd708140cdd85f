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


# ---------------------------------------------------------------------------------------------------------
# Snapshot writing and reading, CLI values, signals (added with the record/CLI split)


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


# ---------------------------------------------------------------------------------------------------------
# The engine, the container runner and parity (moved from engine.py and parity.py)


class EngineUnavailableError(EnvreproError):
    """No container engine answers at the configured endpoint. `where` never carries credentials."""

    def __init__(self, where: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"no Docker engine reachable at {where}: {reason}",
            hint=hint
            or "start the engine (dockerd, or `podman system service`), or point DOCKER_HOST "
            "(or `docker context use`) at the engine's address",
        )
        self.where = where
        self.host = where  # the name earlier releases used
        self.reason = reason


class BuildFailedError(EnvreproError):
    """A Dockerfile instruction failed; carries the instruction and the tail of its log."""

    def __init__(self, instruction: str, step: str, log_tail: Sequence[str]) -> None:
        tail = "\n".join(f"    {line}" for line in log_tail)
        super().__init__(
            f"image build failed at step {step}: {instruction}\n{tail}".rstrip(),
            hint="build/ keeps the Dockerfile and the lock: fix the cause and run `envrepro build` again",
        )
        self.instruction = instruction
        self.step = step
        self.log_tail = tuple(log_tail)


class EngineError(EnvreproError):
    """The engine refused a request (other than the cases above)."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"the Docker engine could not {action}: {reason}")
        self.action = action
        self.reason = reason


class ReferenceMissingError(EnvreproError):
    """The snapshot holds no reference outputs for the model asked about."""

    def __init__(self, model: str, recorded: Sequence[str], snapshot_path: Path) -> None:
        known = ", ".join(recorded) or "none"
        super().__init__(
            f"{snapshot_path} has no reference outputs for {model} (models recorded: {known})",
            hint=f"record one in the training environment: envrepro snapshot --python PATH --model {model}",
        )
        self.model = model
        self.recorded = tuple(recorded)
        self.snapshot_path = snapshot_path


class ReferenceCorruptError(EnvreproError):
    """A reference file is missing, unreadable, or does not match the digests the snapshot recorded."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"reference {path} is unusable: {reason}", hint="record it again with `envrepro snapshot --model`"
        )
        self.path = path
        self.reason = reason


class ImageNotFoundError(EnvreproError):
    """The image to run in is not in the engine."""

    def __init__(self, image: str) -> None:
        super().__init__(
            f"image {image} not found in the Docker engine",
            hint="build it with `envrepro build`, or pass --image NAME:TAG",
        )
        self.image = image


class ProbeTimeoutError(EnvreproError):
    """The container did not finish within its time limit (it was removed)."""

    def __init__(self, image: str, timeout_s: float) -> None:
        super().__init__(
            f"the model did not finish in {image} within {timeout_s:.0f} s (the container was removed)",
            hint="raise --timeout, or use fewer reference samples",
        )
        self.image = image
        self.timeout_s = timeout_s


class ProbeOutOfMemoryError(EnvreproError):
    """The container was killed by its memory limit."""

    def __init__(self, image: str, memory_bytes: int) -> None:
        mib = memory_bytes // (1024 * 1024)
        super().__init__(
            f"the model ran out of memory in {image}: the container was killed at its {mib} MiB limit",
            hint=f"raise the limit with --memory (e.g. --memory {max(2 * mib, 1024)}m), "
            "or use fewer reference samples",
        )
        self.image = image
        self.memory_bytes = memory_bytes


class ContainerRunError(EnvreproError):
    """The probe exited without leaving a record."""

    def __init__(self, image: str, exit_code: int, log_tail: str) -> None:
        super().__init__(
            f"the parity probe failed in {image} (exit {exit_code}): {log_tail}",
            hint="run with -v for the container's log",
        )
        self.image = image
        self.exit_code = exit_code
        self.log_tail = log_tail


class ProbeOutputError(EnvreproError):
    """What the container wrote is not what the probe writes (a link, a device, too big, not parseable)."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the probe's output is not valid: {reason}",
            hint="code running in the image (custom objects, Lambda layers, preprocessing) "
            "changed the probe's output; envrepro does not read it",
        )
        self.reason = reason


class ToleranceError(EnvreproError):
    """A tolerance that is not a finite number >= 0."""

    def __init__(self, flag: str, value: str) -> None:
        super().__init__(f"{flag} {value!r} is not a finite number >= 0", hint="e.g. --atol 1e-5 --rtol 1e-4")
        self.flag = flag
        self.value = value


class UnknownOutputError(EnvreproError):
    """A per-output tolerance names an output the model does not have."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(
            f"--tolerance {name}=...: the model has no output {name!r} (its outputs: {', '.join(known)})",
            hint="use one of the output names listed",
        )
        self.name = name
        self.known = tuple(known)


class OptionValueError(EnvreproError):
    """A command-line value that breaks its rule (parsed once, where it enters)."""

    def __init__(self, flag: str, value: str, rule: str, *, hint: str | None = None) -> None:
        super().__init__(f"{flag} {value!r} is not {rule}", hint=hint)
        self.flag = flag
        self.value = value
        self.rule = rule


class EngineTimeoutError(EngineUnavailableError):
    """The engine accepted the connection (or was being reached) but did not answer within the limit."""

    def __init__(self, where: str, timeout_s: float, variable: str) -> None:
        super().__init__(
            where,
            f"no answer within {timeout_s:g} s (the engine connect/answer timeout)",
            hint=f"check that the address is a Docker API endpoint and that the engine is healthy; "
            f"a slow engine may get longer with {variable}=SECONDS",
        )
        self.timeout_s = timeout_s
        self.variable = variable


class EngineConfigError(EnvreproError):
    """The engine's configuration (an environment variable, a docker context) cannot be used."""

    def __init__(self, setting: str, value: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{setting}={value} cannot be used: {reason}", hint=hint)
        self.setting = setting
        self.value = value
        self.reason = reason


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
