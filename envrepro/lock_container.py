"""Resolve the lock inside the image: pip-tools in a throwaway container of the resolved base image.

pip-compile resolves for the interpreter it runs in (see lock.py), so the one interpreter that gives the
image's lock is the image's own: its exact Python, libc and architecture. `ImageLocker` runs, through the
in-image runner (`runner.run_networked`: the only container with network, removed with its volume
whatever happens), in the base image as the non-root user:

    python3 -m venv /tmp/...                      the container's own tmpfs
    pip install pip==<host's> pip-tools==<host's> the versions envrepro itself runs with (same resolution)
    python in/pip_compile.py compile <lock.COMPILE_FLAGS> --output-file /envrepro/out/requirements.txt

(pip_compile.py is envrepro/pipcompile/run.py, the host's pip-compile too: the index's published hashes.)

The index reaches pip as the build's does: a pip.conf (index URLs with credentials, trusted hosts) and the
CA bundle, uploaded as bytes through the Engine API into the container's volume; they are never written
on the host, never in an image or a layer, never in argv or a log (the engine's logs are redacted). The
lock comes back through the archive download, size-capped and refused when it is not one regular file;
lock.py then parses it strictly (no pip option line).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata

from envrepro import pipcompile, runner
from envrepro.engine_api import ContainerEngine, RunResult
from envrepro.errors import EngineError, LockError, LockPlatformError, ProbeOutputError
from envrepro.inbox import InBytes, InFile
from envrepro.pipconfig import pip_conf_text
from envrepro.target import BuildSecrets

log = logging.getLogger(__name__)

ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le"}
LOCK_OUT = "requirements.txt"
PIP_COMPILE = "pip_compile.py"  # envrepro/pipcompile/run.py, uploaded next to requirements.in
MAX_LOCK_BYTES = 16 * 1024 * 1024  # a TensorFlow GPU lock with every file's hash is about 200 KiB
_VENV = "/tmp/envrepro-lock-venv"  # noqa: S108 - the container's own tmpfs
_EXEC_FORMAT = "exec format error"  # what the kernel says when no emulator runs a foreign binary


@dataclass(frozen=True)
class LockRun:
    """What pip-compile in the image gave: its exit code, its (redacted) log, the lock text if written."""

    returncode: int
    log: str
    output: str | None


@dataclass(frozen=True)
class ImageLocker:
    """Runs pip-compile in a container of `image` (the target's base) for `platform`."""

    engine: Callable[[], ContainerEngine]
    image: str
    python: str  # the image's interpreter (Target.python_executable)
    platform: str  # linux/amd64, linux/arm64, ...
    index: BuildSecrets = field(repr=False)
    timeout_s: float = 900.0

    def __call__(self, requirements_in: str, flags: Sequence[str]) -> LockRun:
        engine = self.engine()
        arch = engine.engine_facts().arch
        foreign = self.platform if engine_platform(arch) != self.platform else None
        log.info("resolving the lock in a container of %s (%s)", self.image, self.platform)
        try:
            result, files = runner.run_networked(
                engine,
                self.image,
                lock_command(self.python, flags),
                lock_inputs(requirements_in, self.index),
                limits=runner.Limits(timeout_s=self.timeout_s),
                how=runner.Networked(platform=foreign),
            )
        except EngineError as exc:
            if foreign:
                raise LockPlatformError(self.platform, arch, getattr(exc, "reason", exc.message)) from exc
            raise
        except ProbeOutputError as exc:
            raise LockError(None, f"the lock container's output is refused: {exc.reason}") from exc
        return self._lock_run(result, files, foreign, arch)

    def _lock_run(
        self, result: RunResult, files: dict[str, bytes], foreign: str | None, arch: str
    ) -> LockRun:
        log.debug("lock container log (redacted):\n%s", result.logs)
        if foreign and _EXEC_FORMAT in result.logs:
            raise LockPlatformError(self.platform, arch, _EXEC_FORMAT)
        if result.timed_out:
            raise LockError(None, f"pip-compile in the image did not finish within {self.timeout_s:.0f} s")
        return LockRun(result.exit_code, result.logs, lock_output(files))


def engine_platform(arch: str) -> str:
    """linux/<GOARCH> of an engine that reports `arch` (x86_64 -> linux/amd64)."""
    return "linux/" + ARCH.get(arch.lower(), arch.lower())


def lock_output(files: dict[str, bytes]) -> str | None:
    """The lock pip-compile wrote, if it did: one UTF-8 file, nothing else, within MAX_LOCK_BYTES."""
    if not files:
        return None
    if set(files) != {LOCK_OUT}:
        raise LockError(None, "the lock container wrote other files: " + ", ".join(sorted(files))[:200])
    data = files[LOCK_OUT]
    if len(data) > MAX_LOCK_BYTES:
        raise LockError(None, f"the lock from the container is over {MAX_LOCK_BYTES // 2**20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LockError(None, f"the lock from the container is not UTF-8 ({exc.reason})") from exc


def lock_inputs(requirements_in: str, index: BuildSecrets) -> list[InFile | InBytes]:
    """requirements.in, pip.conf (index, credentials), ca.pem and the pip-compile script: bytes only."""
    cert = runner.in_path("ca.pem") if index.ca_bundle is not None else None
    inputs: list[InFile | InBytes] = [
        InBytes(requirements_in.encode("utf-8"), "requirements.in"),
        InBytes(pip_conf_text(index, cert).encode("utf-8"), "pip.conf"),
        InBytes(pipcompile.SCRIPT.read_bytes(), PIP_COMPILE),
    ]
    if index.ca_bundle is not None:
        inputs.append(InBytes(index.ca_bundle, "ca.pem"))
    return inputs


def lock_command(python: str, flags: Sequence[str]) -> tuple[str, ...]:
    """/bin/sh -c: a venv in /tmp, the host's pip and pip-tools in it, then pip-compile into out/."""
    venv_python = f"{_VENV}/bin/python"
    install = [venv_python, "-m", "pip", "install", "--quiet", "--no-warn-script-location"]
    tools, pip = f"pip-tools=={metadata.version('pip-tools')}", f"pip=={metadata.version('pip')}"
    compile_ = [venv_python, runner.in_path(PIP_COMPILE), "compile", *flags]
    compile_ += ["--output-file", f"{runner.OUT_DIR}/{LOCK_OUT}", runner.in_path("requirements.in")]
    script = [
        "set -e",
        f"export PIP_CONFIG_FILE={runner.in_path('pip.conf')} PIP_DISABLE_PIP_VERSION_CHECK=1",
        _join([python, "-m", "venv", _VENV]),
        # The host's pip too, so both resolve alike; a Python that pip dropped keeps its own pip.
        f"{_join([*install, pip, tools])} || {_join([*install, tools])}",
        "exec " + _join(compile_),
    ]
    return ("/bin/sh", "-c", "\n".join(script))


def _join(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(part) for part in argv)
