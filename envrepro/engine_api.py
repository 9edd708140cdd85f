"""What envrepro asks of a container engine: the `ContainerEngine` interface, the values that cross it,
and the parsing of an engine's build stream (shared by the real engine and the tests' fake).

engine.py implements the interface against a real engine with the Docker SDK; nothing here talks to one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from envrepro.errors import BuildFailedError
from envrepro.probe.redact import redact_text
from envrepro.target import BuiltImage

RUN_LABEL = "io.envrepro.run"  # on every container parity starts, so leftovers can be found
RUN_ID_LABEL = "io.envrepro.run-id"  # the run's own id (ENVREPRO_RUN_ID): one test run finds its own
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Docker writes `Step 3/9 : RUN ...`, Podman (buildah) `STEP 3/9: RUN ...`
_STEP = re.compile(r"^(?:Step|STEP) (\d+)/(\d+) ?: (.*)$")
# Docker: ` ---> Using cache`; Podman: `--> Using cache <id>`
_CACHED = re.compile(r"^-+> Using cache\b")
# the engines' own bookkeeping between steps, not the step's output
_NOISE = re.compile(
    r"^(-+> |Removing intermediate container |COMMIT |Successfully (built|tagged) |[0-9a-f]{64}$)"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes pip and apt write into the build log


# ---------------------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class ContainerSpec:
    """A locked-down container: no network, rootfs read-only, all capabilities dropped, no new privileges,
    a pids limit, a tmpfs /tmp, memory without swap and a CPU limit. `volumes` are in-container
    directories backed by anonymous volumes (removed with the container): the only places files can be
    uploaded into before the start (`put_archive`) and read back after the exit (`get_archive`)."""

    image: str
    command: tuple[str, ...]
    user: str | None = None  # None: the image's own USER
    environment: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    memory_bytes: int | None = None
    cpus: float | None = None
    pids_limit: int = 512
    tmp_size: str = "512m"
    network_disabled: bool = True
    label: str = "parity"  # the value of RUN_LABEL, so leftovers can be found
    run_id: str = ""  # the value of RUN_ID_LABEL, when the caller runs under an id of its own
    platform: str | None = None  # e.g. linux/arm64 when it is not the engine's own; None: the engine's


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    logs: str
    timed_out: bool = False
    oom_killed: bool = False  # killed by the memory limit


@dataclass(frozen=True)
class BuildEvent:
    """One step of a build as it streams: `Step 3/9 : RUN ...`, and whether the cache served it."""

    step: int
    total: int
    instruction: str
    cached: bool = False


@dataclass(frozen=True)
class BuildOutput:
    """A line the running step wrote (pip's `Downloading tensorflow-...whl (475.2 MB)`): what a heartbeat
    shows while a long step runs."""

    line: str


@dataclass(frozen=True)
class StageEvent:
    """A command moving to its next stage (snapshot, resolve, lock, render, context, build, parity...)."""

    stage: str
    message: str


ProgressEvent = BuildEvent | BuildOutput | StageEvent


@dataclass(frozen=True)
class ImageInfo:
    image_id: str
    size_bytes: int
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    history: tuple[str, ...]  # created_by of every layer, newest first, as `docker history` shows
    repo_digests: tuple[str, ...] = ()  # name@sha256:... where the image came from a registry


@dataclass(frozen=True)
class ImageRecord:
    """One image as a listing shows it: what `envrepro images` and `envrepro clean` work on."""

    image_id: str
    tags: tuple[str, ...]  # empty for a dangling image
    labels: Mapping[str, str]
    size_bytes: int
    created: float  # seconds since the epoch


@dataclass(frozen=True)
class ContainerRecord:
    """One container as a listing shows it: what `envrepro clean` looks at for runs left behind."""

    container_id: str
    image_id: str
    state: str  # the engine's: created, running, paused, restarting, removing, exited, dead
    labels: Mapping[str, str]
    created: float  # seconds since the epoch
    finished: float | None  # exited or dead: when (seconds since the epoch)


@dataclass(frozen=True)
class EngineFacts:
    """What the engine says about itself (`docker version` + `docker info`), for `envrepro doctor`."""

    host: str  # DOCKER_HOST as used (unix:///var/run/docker.sock, tcp://..., ssh://...)
    version: str
    api_version: str
    os: str  # OSType: linux / windows
    arch: str  # x86_64, aarch64, ...
    operating_system: str  # e.g. Debian GNU/Linux 12 (bookworm)
    storage_driver: str
    root_dir: str  # DockerRootDir: where the engine keeps images, on the engine's machine
    product: str = "Docker"  # or "Podman" (its Docker-compatible API)


OnEvent = Callable[[BuildEvent], None]
OnOutput = Callable[[BuildOutput], None]
OnProgress = Callable[[ProgressEvent], None]  # what a command reports to the display the CLI chose


@dataclass(frozen=True)
class BuildOptions:
    """How one build runs: who hears its steps and its output, whether it may use the cache, its platform."""

    on_event: OnEvent | None = None
    on_output: OnOutput | None = None
    no_cache: bool = False
    platform: str | None = None  # None: the engine's own


DEFAULT_BUILD = BuildOptions()


class ContainerEngine(Protocol):
    def image_exists(self, ref: str) -> bool: ...

    def inspect_image(self, ref: str) -> ImageInfo: ...

    def build(self, context_tar: bytes, *, tag: str, options: BuildOptions = DEFAULT_BUILD) -> BuiltImage: ...

    def cpu_count(self) -> int: ...

    def create_container(self, spec: ContainerSpec) -> str: ...

    def put_archive(self, container: str, path: str, tar: bytes) -> None: ...

    def start_container(self, container: str, timeout_s: float) -> RunResult: ...

    def get_archive(self, container: str, path: str) -> Generator[bytes, None, None]: ...

    def remove_container(self, container: str) -> None: ...

    def remove_image(self, ref: str) -> None: ...

    def tag_image(self, ref: str, new_ref: str) -> None: ...

    def list_images(self, label: str) -> list[ImageRecord]: ...

    def images_used_by_containers(self, excluding: frozenset[str] = frozenset()) -> frozenset[str]: ...

    def list_containers(self, label: str) -> list[ContainerRecord]: ...

    def delete_image(self, ref: str, *, prune: bool = True) -> None: ...

    def engine_facts(self) -> EngineFacts: ...


# ---------------------------------------------------------------------------------------------------------
# Build stream parsing (shared by the real engine and the fake)


@dataclass
class BuildStream:
    """Folds the engine's JSON build messages into events, the last step, a log tail and the image ID."""

    on_event: OnEvent | None = None
    on_output: OnOutput | None = None
    tail_lines: int = 15
    step: str = "?"
    instruction: str = ""
    image_id: str = ""
    tail: list[str] = field(default_factory=list)
    error: str = ""

    def feed(self, message: Mapping[str, Any]) -> None:
        if "error" in message:
            self.error = redact_text(_ANSI.sub("", str(message.get("error", ""))).strip())
            return
        aux = message.get("aux")
        if isinstance(aux, Mapping) and "ID" in aux:
            self.image_id = str(aux["ID"])
        for line in _ANSI.sub("", str(message.get("stream", ""))).splitlines():
            self._line(redact_text(line.rstrip()))

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        step = _STEP.match(line)
        if step:
            self.step, self.instruction = f"{step.group(1)}/{step.group(2)}", step.group(3)
            self.tail = []
            self._emit(int(step.group(1)), int(step.group(2)), step.group(3), cached=False)
            return
        text = line.strip()
        if _CACHED.match(text) and self.on_event and "/" in self.step:
            current, total = self.step.split("/")
            self._emit(int(current), int(total), self.instruction, cached=True)
        elif self.on_output and not _NOISE.match(text):
            self.on_output(BuildOutput(text))
        self.tail = [*self.tail, line][-self.tail_lines :]
        found = re.match(r"^Successfully built ([0-9a-f]+)$", line.strip())
        if found and not self.image_id:
            self.image_id = found.group(1)

    def _emit(self, step: int, total: int, instruction: str, *, cached: bool) -> None:
        if self.on_event:
            self.on_event(BuildEvent(step, total, instruction, cached))

    def finish(self) -> str:
        """The built image's ID, or the build's failure raised."""
        if self.error or not self.image_id:
            raise self.failure()
        return self.image_id

    def failure(self) -> BuildFailedError:
        tail = [line for line in self.tail if not line.startswith(" ---> Running in")]
        if self.error and (not tail or self.error not in tail[-1]):
            tail.append(self.error)
        return BuildFailedError(self.instruction or "(before the first step)", self.step, tail)


# --- a build again, when another build on a shared engine took an image away mid-probe ----------------

# The legacy builder looks for a cached step among the children of the step before; when another build
# removes such a child meanwhile, this build fails: 'unable to find image "sha256:..."'. Nothing was wrong
# with it: building again, from the cache that is left, succeeds.
_LOST_CACHE_IMAGE = re.compile(r'unable to find image "?sha256:[0-9a-f]{12,64}"?')
CACHE_RACE_RETRIES = 2
_log = logging.getLogger(__name__)


def build_image(
    engine: ContainerEngine, context_tar: bytes, *, tag: str, options: BuildOptions = DEFAULT_BUILD
) -> BuiltImage:
    """`engine.build`, built again (at most CACHE_RACE_RETRIES times) when the failure is that race."""
    attempt = 0
    while True:
        try:
            return engine.build(context_tar, tag=tag, options=options)
        except BuildFailedError as exc:
            if attempt >= CACHE_RACE_RETRIES or not _lost_cache_image(exc):
                raise
            attempt += 1
            why = "an image the engine's cache pointed to was removed by another build meanwhile"
            _log.warning("build %s: %s; building again (%d of %d)", tag, why, attempt, CACHE_RACE_RETRIES)


def _lost_cache_image(failure: BuildFailedError) -> bool:
    return any(_LOST_CACHE_IMAGE.search(line) for line in (*failure.log_tail, str(failure)))
