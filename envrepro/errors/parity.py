"""The reference, the in-image run and what it wrote, and the flags that steer it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envrepro.errors.base import EnvreproError


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
