"""The container engine: the only module that talks to Docker.

`ContainerEngine` is the interface the build and the in-image runner (`runner.py`) use: images (exists,
inspect, build, tag, remove) and the primitives of one locked-down container (create, upload files into
its volumes, start and wait, download what it wrote, remove). Files travel only through the Engine API's
archive endpoints, never as host paths, so a remote engine works like a local one. `DockerEngine`
implements it with the Docker SDK against a real engine (`DOCKER_HOST` respected); the tests' fake
(tests/support/fake_engine.py) implements it in memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from docker.errors import APIError, ImageNotFound

from envrepro import connect
from envrepro.errors import BuildFailedError, EngineError, ImageInUseError
from envrepro.probe.redact import redact_text
from envrepro.target import BuiltImage

log = logging.getLogger(__name__)

RUN_LABEL = "io.envrepro.run"  # on every container parity starts, so leftovers can be found
RUN_ID_LABEL = "io.envrepro.run-id"  # the run's own id (ENVREPRO_RUN_ID): one test run finds its own
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
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


class ContainerEngine(Protocol):
    def image_exists(self, ref: str) -> bool: ...

    def inspect_image(self, ref: str) -> ImageInfo: ...

    def build(
        self, context_tar: bytes, *, tag: str, on_event: OnEvent | None = None, no_cache: bool = False
    ) -> BuiltImage: ...

    def cpu_count(self) -> int: ...

    def create_container(self, spec: ContainerSpec) -> str: ...

    def put_archive(self, container: str, path: str, tar: bytes) -> None: ...

    def start_container(self, container: str, timeout_s: float) -> RunResult: ...

    def get_archive(self, container: str, path: str) -> Generator[bytes, None, None]: ...

    def remove_container(self, container: str) -> None: ...

    def remove_image(self, ref: str) -> None: ...

    def tag_image(self, ref: str, new_ref: str) -> None: ...

    def list_images(self, label: str) -> list[ImageRecord]: ...

    def images_used_by_containers(self) -> frozenset[str]: ...

    def delete_image(self, ref: str, *, prune: bool = True) -> None: ...

    def engine_facts(self) -> EngineFacts: ...


# ---------------------------------------------------------------------------------------------------------
# Build stream parsing (shared by the real engine and the fake)


@dataclass
class BuildStream:
    """Folds the engine's JSON build messages into events, the last step, a log tail and the image ID."""

    on_event: OnEvent | None = None
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
        if line.strip() == "---> Using cache" and self.on_event:
            current, total = self.step.split("/")
            self._emit(int(current), int(total), self.instruction, cached=True)
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


# ---------------------------------------------------------------------------------------------------------
# The real engine


class DockerEngine:
    """A Docker engine reached through the SDK (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, ... respected)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        """Reach the engine as connect.py resolves it (DOCKER_HOST, docker context, local socket)."""
        endpoint, self.client = connect.connect(os.environ if env is None else env)
        self.host = endpoint.shown  # credentials redacted
        self.api = self.client.api

    def image_exists(self, ref: str) -> bool:

        try:
            self.api.inspect_image(ref)  # type: ignore[no-untyped-call]
        except ImageNotFound:
            return False
        return True

    def inspect_image(self, ref: str) -> ImageInfo:

        try:
            data: dict[str, Any] = self.api.inspect_image(ref)  # type: ignore[no-untyped-call]
            history: list[dict[str, Any]] = self.api.history(ref)  # type: ignore[no-untyped-call]
        except APIError as exc:
            raise EngineError(f"inspect image {ref}", _short(exc)) from exc
        return ImageInfo(
            image_id=str(data["Id"]),
            size_bytes=int(data.get("Size") or 0),
            tags=tuple(sorted(data.get("RepoTags") or ())),
            labels=dict((data.get("Config") or {}).get("Labels") or {}),
            history=tuple(str(layer.get("CreatedBy", "")) for layer in history),
            repo_digests=tuple(sorted(data.get("RepoDigests") or ())),
        )

    def build(
        self, context_tar: bytes, *, tag: str, on_event: OnEvent | None = None, no_cache: bool = False
    ) -> BuiltImage:
        stream = BuildStream(on_event)
        try:
            messages = self.api.build(
                fileobj=io.BytesIO(context_tar),
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,  # remove intermediate containers also when a step fails
                pull=False,
                nocache=no_cache,
                decode=True,
            )
            try:
                for message in messages:
                    stream.feed(message)
            finally:
                _close(messages)  # on Ctrl-C this drops the connection, which cancels the build
        except APIError as exc:
            raise EngineError(f"build {tag}", _short(exc)) from exc
        stream.finish()
        info = self.inspect_image(tag)
        return BuiltImage(image_id=info.image_id, size_bytes=info.size_bytes, tags=info.tags)

    def cpu_count(self) -> int:
        return int(self.api.info().get("NCPU") or 1)

    def create_container(self, spec: ContainerSpec) -> str:
        try:
            container = self.client.containers.create(spec.image, list(spec.command), **_create_options(spec))
        except APIError as exc:
            raise EngineError(f"create a container from {spec.image}", _short(exc)) from exc
        return str(container.id)

    def put_archive(self, container: str, path: str, tar: bytes) -> None:
        try:
            self.api.put_archive(container, path, tar)
        except APIError as exc:
            raise EngineError(f"copy files into the container at {path}", _short(exc)) from exc

    def start_container(self, container: str, timeout_s: float) -> RunResult:
        handle = self.client.containers.get(container)
        try:
            handle.start()
        except APIError as exc:
            raise EngineError(f"start the container of {handle.image}", _short(exc)) from exc
        try:
            status = handle.wait(timeout=timeout_s)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            with contextlib.suppress(APIError):
                handle.kill()
            return RunResult(exit_code=-1, logs=_logs(handle), timed_out=True)
        handle.reload()
        oom = bool((handle.attrs.get("State") or {}).get("OOMKilled"))
        return RunResult(exit_code=int(status.get("StatusCode", -1)), logs=_logs(handle), oom_killed=oom)

    def get_archive(self, container: str, path: str) -> Generator[bytes, None, None]:
        """The tar stream of `path`, in chunks; closing the iterator drops the connection (nothing more is
        read from the engine, however much the container wrote)."""
        api: Any = self.api  # docker-py's get_archive cannot close its stream early: its own calls here
        url = api._url("/containers/{0}/archive", container)
        response = api._get(url, params={"path": path}, stream=True)
        try:
            api._raise_for_status(response)
            yield from response.iter_content(64 * 1024, decode_unicode=False)
        except APIError as exc:
            raise EngineError(f"copy {path} out of the container", _short(exc)) from exc
        finally:
            response.close()

    def remove_container(self, container: str) -> None:
        try:
            self.api.remove_container(container, v=True, force=True)
        except (APIError, requests.exceptions.RequestException) as exc:
            log.warning(
                "container %s may be left behind (label %s): %s", container[:12], RUN_LABEL, _short(exc)
            )

    def remove_image(self, ref: str) -> None:

        with contextlib.suppress(ImageNotFound):
            self.api.remove_image(ref, force=True)

    def tag_image(self, ref: str, new_ref: str) -> None:

        repository, _, tag = (
            new_ref.rpartition(":") if ":" in new_ref.rsplit("/", 1)[-1] else (new_ref, "", "latest")
        )
        try:
            self.api.tag(ref, repository, tag)
        except APIError as exc:
            raise EngineError(f"tag {ref} as {new_ref}", _short(exc)) from exc

    def running_containers(self, label: str = RUN_LABEL) -> list[str]:
        """IDs of containers (any state) that carry `label`: what parity would have left behind."""
        return [str(c.id) for c in self.client.containers.list(all=True, filters={"label": label})]

    def export_image(self, ref: str) -> Iterator[bytes]:
        """The image as `docker save` writes it (a tar of layers and configs), streamed."""
        yield from self.client.images.get(ref).save(named=True)

    # --- inventory and doctor (envrepro/inventory.py, envrepro/doctor.py) ---

    def list_images(self, label: str) -> list[ImageRecord]:
        """Top-level images (tagged or dangling, not intermediate layers) that carry `label`."""
        try:
            rows: list[dict[str, Any]] = self.api.images(filters={"label": label})
        except APIError as exc:
            raise EngineError("list images", _short(exc)) from exc
        return [_image_record(row) for row in rows]

    def images_used_by_containers(self) -> frozenset[str]:
        """IDs of the images any container (running or stopped) was created from."""
        try:
            rows: list[dict[str, Any]] = self.api.containers(all=True)
        except APIError as exc:
            raise EngineError("list containers", _short(exc)) from exc
        return frozenset(str(row.get("ImageID", "")) for row in rows if row.get("ImageID"))

    def delete_image(self, ref: str, *, prune: bool = True) -> None:
        """`docker rmi REF` without force: the engine refuses while a container or child image needs it.

        With only this tag left, the image goes; `prune=False` keeps its untagged parents (the cache)."""
        try:
            self.api.remove_image(ref, force=False, noprune=not prune)
        except ImageNotFound:
            return
        except APIError as exc:
            if exc.status_code == 409:
                raise ImageInUseError(ref, _short(exc)) from exc
            raise EngineError(f"remove image {ref}", _short(exc)) from exc

    def engine_facts(self) -> EngineFacts:
        try:
            version: dict[str, Any] = self.api.version()
            info: dict[str, Any] = self.api.info()
        except APIError as exc:
            raise EngineError("describe itself", _short(exc)) from exc
        return EngineFacts(
            host=self.host,
            version=str(version.get("Version", "unknown")),
            api_version=str(version.get("ApiVersion", "unknown")),
            os=str(info.get("OSType") or version.get("Os") or "unknown"),
            arch=str(info.get("Architecture") or version.get("Arch") or "unknown"),
            operating_system=str(info.get("OperatingSystem", "unknown")),
            storage_driver=str(info.get("Driver", "unknown")),
            root_dir=str(info.get("DockerRootDir", "")),
            product="Podman" if "podman" in json.dumps(version.get("Components", [])).lower() else "Docker",
        )


def _image_record(row: Mapping[str, Any]) -> ImageRecord:
    tags = tuple(sorted(tag for tag in row.get("RepoTags") or () if tag != "<none>:<none>"))
    return ImageRecord(
        image_id=str(row["Id"]),
        tags=tags,
        labels=dict(row.get("Labels") or {}),
        size_bytes=int(row.get("Size") or 0),
        created=float(row.get("Created") or 0),
    )


def _logs(container: Any) -> str:
    raw = container.logs(stdout=True, stderr=True)
    return redact_text(raw.decode("utf-8", errors="replace"))


def _create_options(spec: ContainerSpec) -> dict[str, Any]:
    return {
        "user": spec.user,
        "environment": dict(spec.environment),
        "volumes": list(spec.volumes),  # anonymous volumes: writable by the archive API before the start
        "network_disabled": spec.network_disabled,
        "mem_limit": spec.memory_bytes,
        "memswap_limit": spec.memory_bytes,  # no swap beyond the memory limit
        "nano_cpus": int(spec.cpus * 1e9) if spec.cpus else None,
        "labels": {RUN_LABEL: spec.label, **({RUN_ID_LABEL: spec.run_id} if spec.run_id else {})},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": spec.pids_limit,
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={spec.tmp_size}"},  # noqa: S108 - the container's own tmpfs
    }


def _close(messages: Iterable[Any]) -> None:
    close = getattr(messages, "close", None)
    if callable(close):
        close()


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return redact_text(text.strip().splitlines()[-1] if text.strip() else type(exc).__name__)
