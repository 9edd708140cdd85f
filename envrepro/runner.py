"""The in-image runner: the one place that creates containers of an image to run something in it.

Parity, `diff image:` and the build's look at a base image all run here. Each run is one locked-down
container (see `engine.ContainerSpec`: no network, read-only root filesystem, non-root, capabilities
dropped, no new privileges, pids/memory/CPU limits, a time limit) that is always removed, with its
volumes, whatever happens (an error, a timeout, Ctrl-C or any other signal turned into an exception).
One kind of run has network: `run_networked`, for resolving the lock in the base image (lock_container.py).

Files go in and out only through the Engine API's archives, never as host paths, so a remote engine
works like a local one. The layout inside the container, on one anonymous volume at `/envrepro`:

    /envrepro/in/...   what the host sends: owned by root, files 0444 and directories 0555
    /envrepro/out/     the only place the container user (uid 10001) may write; read back as untrusted
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec

from envrepro import outbox
from envrepro.data import numerics_env_names
from envrepro.engine_api import ContainerEngine, ContainerSpec, RunResult
from envrepro.errors import (
    ContainerRunError,
    ImageNotFoundError,
    ProbeOutOfMemoryError,
    ProbeTimeoutError,
)
from envrepro.inbox import InBytes, InFile, input_tar
from envrepro.probe import PROBE_DIR
from envrepro.signals import deferred_signals
from envrepro.target import UID

log = logging.getLogger(__name__)
P = ParamSpec("P")

ROOT = "/envrepro"
IN_DIR = f"{ROOT}/in"
OUT_DIR = f"{ROOT}/out"
PROBE_IN = f"{IN_DIR}/probe"
CONTAINER_USER = f"{UID}:{UID}"  # the non-root user the rendered images create
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MEMORY_BYTES = 4 * 1024**3
DEFAULT_CPUS = 2.0  # or the engine's CPU count when it has fewer
EXIT_KILLED = 137  # 128 + SIGKILL: what a container killed by its memory limit exits with


@dataclass(frozen=True)
class Limits:
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    cpus: float | None = None  # None: DEFAULT_CPUS, at most the engine's CPU count


@dataclass(frozen=True)
class Networked:
    """A throwaway container that may reach the network (resolving a lock): its platform and /tmp size."""

    platform: str | None = None
    tmp_size: str = "2g"
    label: str = "lock"


@dataclass(frozen=True)
class ProbeOutput:
    """The probe's record and the other files it wrote (untrusted bytes, parsed by the caller)."""

    record: dict[str, Any]
    files: Mapping[str, bytes] = field(default_factory=dict)
    logs: str = ""

    def arrays(self, name: str) -> dict[str, Any]:
        return outbox.parse_npz(dict(self.files), name)


def in_path(target: str) -> str:
    return f"{IN_DIR}/{target}"


@contextlib.contextmanager
def started_probe(
    engine: ContainerEngine,
    image: str,
    args: Sequence[str] = (),
    inputs: Sequence[InFile] = (),
    limits: Limits = Limits(),
    *,
    environment: Mapping[str, str | None] | None = None,
) -> Iterator[RunningProbe]:
    """`run_probe` in two steps, so that the caller works while the image runs: the block runs once the
    container has started; `output()` waits for it and reads what it wrote. The container is removed on
    the way out of the block, whatever the way out is (its output read or not, an error, a signal)."""
    with _probe_container(engine, image, args, inputs, limits=limits, environment=environment) as container:
        yield RunningProbe(engine, container, image, limits)


@contextlib.contextmanager
def launched_probe(
    engine: ContainerEngine,
    image: str,
    limits: Limits = Limits(),
    *,
    environment: Mapping[str, str | None] | None = None,
) -> Iterator[LaunchedProbe]:
    """`started_probe` before its arguments are known: the container starts with only the probe in it, and
    Python's start, the environment record and TensorFlow's import (seconds) run while the caller reads and
    checks its own inputs; `send()` then gives the probe its arguments and files, and it goes on. Nothing
    of what the caller has not checked yet is in the container. Removed on the way out, as there."""
    wait = ("--args-from", IN_DIR, "--args-timeout", f"{limits.timeout_s:g}")
    with _probe_container(engine, image, wait, (), limits=limits, environment=environment) as container:
        yield LaunchedProbe(engine, container, RunningProbe(engine, container, image, limits))


@dataclass(frozen=True)
class LaunchedProbe:
    """The probe's container, running and waiting for `send()`."""

    engine: ContainerEngine
    container: str
    running: RunningProbe

    def send(self, args: Sequence[str], inputs: Sequence[InFile] = ()) -> RunningProbe:
        """The probe's arguments and files; `go`, last in the archive, tells it that they are whole."""
        sent: list[InFile | InBytes] = [*inputs, InBytes(json.dumps(list(args)).encode("utf-8"), "args.json")]
        sent.append(InBytes(b"", "go"))
        self.engine.put_archive(self.container, ROOT, input_tar(sent, with_out=False))
        return self.running


@contextlib.contextmanager
def _probe_container(
    engine: ContainerEngine,
    image: str,
    args: Sequence[str],
    inputs: Sequence[InFile],
    *,
    limits: Limits,
    environment: Mapping[str, str | None] | None,
) -> Iterator[str]:
    """The probe's container, created with the probe and `inputs` in it (not started); removed on exit."""
    if not engine.image_exists(image):
        raise ImageNotFoundError(image)
    spec = _probe_spec(engine, image, args, limits, dict(environment or {}))
    with _container(engine, spec) as container:
        engine.put_archive(container, ROOT, input_tar([InFile(PROBE_DIR, "probe"), *inputs]))
        yield container


def _waited(start: Callable[P, AbstractContextManager[RunningProbe]]) -> Callable[P, ProbeOutput]:
    def run(*args: P.args, **kwargs: P.kwargs) -> ProbeOutput:
        with start(*args, **kwargs) as running:
            return running.output()

    return run


run_probe = _waited(started_probe)
run_probe.__doc__ = """Run the snapshot probe inside `image` on `inputs` and return what it wrote to
/envrepro/out (`started_probe`'s arguments). `environment` overrides
variables for this run only (None: unset, even if the image sets it)."""


class RunningProbe:
    """The probe's container, started; a thread waits for it (the engine's start + wait blocks on its
    socket), so signals still reach the caller's thread, which removes the container."""

    def __init__(self, engine: ContainerEngine, container: str, image: str, limits: Limits) -> None:
        self._args = (engine, container, image)
        self._limits = limits
        self._ended: list[RunResult | BaseException] = []
        self._waiter = threading.Thread(target=self._wait, name="envrepro-probe", daemon=True)
        self._waiter.start()

    def _wait(self) -> None:
        engine, container, _ = self._args
        try:
            self._ended.append(engine.start_container(container, self._limits.timeout_s))
        except BaseException as exc:  # noqa: BLE001 - handed to output(), in the caller's thread
            self._ended.append(exc)

    def output(self) -> ProbeOutput:
        """Wait for the probe to end; what it wrote, as `run_probe` returns it (or its error)."""
        self._waiter.join()
        ended = self._ended[0]
        if isinstance(ended, BaseException):
            raise ended
        return _probe_output(*self._args, ended, self._limits)


def _probe_output(
    engine: ContainerEngine, container: str, image: str, result: RunResult, limits: Limits
) -> ProbeOutput:
    """What the probe wrote to /envrepro/out, once its container has ended (`result`)."""
    log.debug("container log:\n%s", result.logs)
    _check_exit(image, result, limits)
    with contextlib.closing(engine.get_archive(container, OUT_DIR)) as chunks:
        files = outbox.read_files(chunks)  # closing drops the stream before the container goes
    if "record.json" not in files:
        raise ContainerRunError(image, result.exit_code, _tail(result.logs))
    return ProbeOutput(outbox.parse_json(files, "record.json"), files, result.logs)


def _probe_spec(
    engine: ContainerEngine, image: str, args: Sequence[str], limits: Limits, override: dict[str, str | None]
) -> ContainerSpec:
    """The probe's locked-down container; `override` sets variables (None: `env -u` unsets them)."""
    unset = [arg for name, value in sorted(override.items()) if value is None for arg in ("-u", name)]
    command = (
        *(("env", *unset) if unset else ()), "python3", f"{PROBE_IN}/main.py",
        "--out", f"{OUT_DIR}/record.json", "--ref-dir", OUT_DIR,
        "--env-names", ",".join(numerics_env_names()), *args,
    )  # fmt: skip
    return ContainerSpec(
        image=image,
        command=command,
        user=CONTAINER_USER,
        environment={
            **{name: value for name, value in override.items() if value is not None},
            "HOME": "/tmp",  # noqa: S108 - inside the container
            "TF_CPP_MIN_LOG_LEVEL": "2",
        },
        volumes=(ROOT,),
        memory_bytes=limits.memory_bytes,
        cpus=_cpus(engine, limits),
    )


def run_command(
    engine: ContainerEngine,
    image: str,
    command: Sequence[str],
    limits: Limits = Limits(),
    environment: Mapping[str, str] | None = None,
    *,
    label: str = "parity",
    platform: str | None = None,
) -> RunResult:
    """Run `command` in a locked-down container of `image` as the image's user; its exit code and log.
    `platform` asks the engine for that platform's variant of the image (None: the engine's own)."""
    spec = ContainerSpec(
        image=image,
        command=tuple(command),
        environment=dict(environment or {}),
        memory_bytes=limits.memory_bytes,
        cpus=_cpus(engine, limits),
        label=label,
        platform=platform,
    )
    with _container(engine, spec) as container:
        return engine.start_container(container, limits.timeout_s)


def run_networked(
    engine: ContainerEngine,
    image: str,
    command: Sequence[str],
    inputs: Sequence[InFile | InBytes],
    *,
    limits: Limits = Limits(),
    how: Networked = Networked(),
) -> tuple[RunResult, dict[str, bytes]]:
    """Run `command` as the non-root user in a throwaway container of `image` WITH network (the only one):
    `inputs` uploaded to /envrepro/in, what it wrote to /envrepro/out downloaded as untrusted files.
    The container and its volume are removed whatever happens, so nothing uploaded outlives the run."""
    spec = ContainerSpec(
        image=image,
        command=tuple(command),
        user=CONTAINER_USER,
        environment={"HOME": "/tmp"},  # noqa: S108 - inside the container
        volumes=(ROOT,),
        memory_bytes=limits.memory_bytes,
        cpus=_cpus(engine, limits),
        tmp_size=how.tmp_size,
        network_disabled=False,
        label=how.label,
        platform=how.platform,
    )
    with _container(engine, spec) as container:
        engine.put_archive(container, ROOT, input_tar(inputs))
        result = engine.start_container(container, limits.timeout_s)
        with contextlib.closing(engine.get_archive(container, OUT_DIR)) as chunks:
            files = outbox.read_files(chunks)
    return result, files


class _container:  # noqa: N801 - used as a context manager, reads like one
    """Create the container; remove it (and its volumes) on the way out, whatever the way out is."""

    def __init__(self, engine: ContainerEngine, spec: ContainerSpec) -> None:
        self.engine = engine
        self.spec = spec
        self.id = ""

    def __enter__(self) -> str:
        try:
            with deferred_signals():  # a signal waits until the ID is known, so that it can be removed
                self.id = self.engine.create_container(replace(self.spec, run_id=_run_id()))
        except BaseException:
            if self.id:
                self.engine.remove_container(self.id)
            raise
        return self.id

    def __exit__(self, *exc: object) -> None:
        self.engine.remove_container(self.id)


def _run_id() -> str:
    """The caller's own run id (ENVREPRO_RUN_ID), put on its containers as a label: CI runs and test
    sessions sharing one engine each find their own containers and no one else's."""
    return os.environ.get("ENVREPRO_RUN_ID", "")


def _cpus(engine: ContainerEngine, limits: Limits) -> float:
    return limits.cpus if limits.cpus is not None else min(DEFAULT_CPUS, float(engine.cpu_count()))


def _check_exit(image: str, result: RunResult, limits: Limits) -> None:
    if result.timed_out:
        raise ProbeTimeoutError(image, limits.timeout_s)
    if result.oom_killed or result.exit_code == EXIT_KILLED:
        raise ProbeOutOfMemoryError(image, limits.memory_bytes)


def _tail(logs: str, lines: int = 3) -> str:
    kept = [line.strip() for line in logs.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "no output"
