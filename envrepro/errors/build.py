"""Resolving, locking, rendering and building an image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envrepro.errors.base import EnvreproError


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

    def __init__(self, requirement: str | None, detail: str, *, conflict: bool = False) -> None:
        subject = f"cannot lock {requirement}" if requirement else "cannot lock the requirements"
        super().__init__(
            f"{subject}: {detail}",
            hint="check that this version exists on your package index for the image's Python and platform; "
            "run with -v to see pip-compile's output",
        )
        self.requirement = requirement
        self.detail = detail
        self.conflict = conflict  # the resolver said these pins cannot be installed together


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


class LockPlatformError(EnvreproError):
    """The engine cannot run a container of the image's platform, so the lock cannot be resolved in it."""

    def __init__(self, platform: str, engine_arch: str, detail: str) -> None:
        super().__init__(
            f"the engine ({engine_arch}) cannot run {platform} containers to resolve the lock: {detail}",
            hint=emulation_hint(platform),
        )
        self.platform = platform
        self.engine_arch = engine_arch
        self.detail = detail


def emulation_hint(platform: str) -> str:
    """What to do when an engine cannot run `platform` containers."""
    return (
        f"register QEMU for {platform} on the engine's machine (binfmt_misc, e.g. "
        "`docker run --privileged --rm tonistiigi/binfmt --install all`), or run `envrepro build` "
        f"on a {platform} machine"
    )


class PlatformUnavailableError(EnvreproError):
    """The engine cannot run containers of the image's platform (no emulator): nothing can be built."""

    def __init__(self, platform: str, engine_arch: str, image: str, detail: str) -> None:
        super().__init__(
            f"the engine ({engine_arch}) cannot run {platform} containers of {image}, so it cannot "
            f"build a {platform} image: {detail}",
            hint=emulation_hint(platform) + f"; the base needs a {platform} variant the engine has or can "
            "pull (python:*-slim images have one)",
        )
        self.platform = platform
        self.engine_arch = engine_arch
        self.image = image
        self.detail = detail


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


class UnsupportedMachineError(ResolveError):
    """The snapshot's machine architecture is one envrepro builds no image platform for."""

    def __init__(self, machine: str, supported: Sequence[str]) -> None:
        super().__init__(
            f"the snapshot was taken on a {machine!r} machine; envrepro builds images for "
            + ", ".join(supported)
            + " only",
            hint="pass --platform with one of them to build for it anyway (results may differ from "
            "the training machine's)",
        )
        self.machine = machine
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
