"""The container engine: the only module that talks to Docker.

`ContainerEngine` is the interface the build and parity stages use. `DockerEngine` implements it with the
Docker SDK's low-level API against a real engine (`DOCKER_HOST` respected); `FakeEngine` implements it in
memory for unit tests, with scripted builds and container runs that are real Python callables.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import docker  # envrepro imports the Docker SDK here and nowhere else
import requests
from docker.errors import APIError, DockerException, ImageNotFound
from docker.types import Mount as SdkMount

from envrepro.errors import EnvreproError, ImageInUseError
from envrepro.probe.redact import redact_text
from envrepro.target import BuiltImage

log = logging.getLogger(__name__)

RUN_LABEL = "io.envrepro.run"  # on every container parity starts, so leftovers can be found
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes pip and apt write into the build log


# ---------------------------------------------------------------------------------------------------------
# Errors


class EngineUnavailableError(EnvreproError):
    """No Docker engine answers."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            f"no Docker engine reachable at DOCKER_HOST={host}: {reason}",
            hint="start the engine (dockerd), or set DOCKER_HOST to the engine's address",
        )
        self.host = host
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


# ---------------------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    logs: str
    timed_out: bool = False


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

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[Mount] = (),
        network_disabled: bool = True,
        user: str | None = None,
        mem_limit: str | None = None,
        timeout_s: float = 600.0,
        environment: Mapping[str, str] | None = None,
    ) -> RunResult: ...

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

        environ = dict(os.environ if env is None else env)
        self.host = environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        try:
            self.client = docker.from_env(environment=environ, timeout=600)
            self.client.ping()
        except DockerException as exc:
            raise EngineUnavailableError(self.host, _short(exc)) from exc
        except OSError as exc:
            raise EngineUnavailableError(self.host, str(exc)) from exc
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

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[Mount] = (),
        network_disabled: bool = True,
        user: str | None = None,
        mem_limit: str | None = None,
        timeout_s: float = 600.0,
        environment: Mapping[str, str] | None = None,
    ) -> RunResult:

        try:
            container = self.client.containers.create(
                image,
                list(command),
                mounts=[_docker_mount(m) for m in mounts],
                network_disabled=network_disabled,
                user=user,
                mem_limit=mem_limit,
                memswap_limit=mem_limit,  # no swap beyond the memory limit
                environment=dict(environment or {}),
                labels={RUN_LABEL: "parity"},
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=512,
                read_only=True,
                tmpfs={"/tmp": "rw,size=512m"},  # noqa: S108 - the container's own tmpfs, not the host's
            )
        except APIError as exc:
            raise EngineError(f"create a container from {image}", _short(exc)) from exc
        try:
            return _wait(container, timeout_s)
        finally:
            with contextlib.suppress(APIError):
                container.remove(force=True)  # also after a timeout, an error or Ctrl-C

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


def split_ref(ref: str) -> tuple[str, str]:
    """`name:tag` -> (name, tag); a missing tag is `latest` (a registry port is not a tag)."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


def _image_record(row: Mapping[str, Any]) -> ImageRecord:
    tags = tuple(sorted(tag for tag in row.get("RepoTags") or () if tag != "<none>:<none>"))
    return ImageRecord(
        image_id=str(row["Id"]),
        tags=tags,
        labels=dict(row.get("Labels") or {}),
        size_bytes=int(row.get("Size") or 0),
        created=float(row.get("Created") or 0),
    )


def _wait(container: Any, timeout_s: float) -> RunResult:

    container.start()
    try:
        status = container.wait(timeout=timeout_s)
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        with contextlib.suppress(Exception):
            container.kill()
        return RunResult(exit_code=-1, logs=_logs(container), timed_out=True)
    return RunResult(exit_code=int(status.get("StatusCode", -1)), logs=_logs(container))


def _logs(container: Any) -> str:
    raw = container.logs(stdout=True, stderr=True)
    return redact_text(raw.decode("utf-8", errors="replace"))


def _docker_mount(mount: Mount) -> Any:

    return SdkMount(target=mount.target, source=str(mount.source), type="bind", read_only=mount.read_only)


def _close(messages: Iterable[Any]) -> None:
    close = getattr(messages, "close", None)
    if callable(close):
        close()


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return redact_text(text.strip().splitlines()[-1] if text.strip() else type(exc).__name__)


# ---------------------------------------------------------------------------------------------------------
# The fake engine for unit tests


@dataclass(frozen=True)
class RunCall:
    """How the fake was asked to run a container (what a test checks: no network, a non-root user...)."""

    image: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...]
    network_disabled: bool
    user: str | None
    mem_limit: str | None
    timeout_s: float


RunHandler = Callable[[Sequence[str], Sequence[Mount], Mapping[str, str]], RunResult]


@dataclass
class FakeEngine:
    """An in-memory engine. Builds read the real context tar and replay scripted engine messages; runs call
    a handler that gets the command and the mounts (host paths) and may write into writable mounts."""

    images: dict[str, ImageInfo] = field(default_factory=dict)
    handlers: dict[str, RunHandler] = field(default_factory=dict)
    build_messages: list[dict[str, Any]] | None = None  # scripted engine messages; default: a success
    builds: list[dict[str, bytes]] = field(default_factory=list)  # the context files of every build
    runs: list[RunCall] = field(default_factory=list)
    removed_containers: int = 0
    no_cache_builds: int = 0

    def image_exists(self, ref: str) -> bool:
        return ref in self.images

    def inspect_image(self, ref: str) -> ImageInfo:
        if ref not in self.images:
            raise EngineError(f"inspect image {ref}", "No such image")
        return self.images[ref]

    def build(
        self, context_tar: bytes, *, tag: str, on_event: OnEvent | None = None, no_cache: bool = False
    ) -> BuiltImage:
        files = _untar(context_tar)
        self.builds.append(files)
        self.no_cache_builds += no_cache
        dockerfile = files.get("Dockerfile", b"").decode()
        messages = self.build_messages if self.build_messages is not None else _success(dockerfile)
        stream = BuildStream(on_event)
        for message in messages:
            stream.feed(message)
        image_id = stream.finish()
        info = ImageInfo(image_id, 1000 * len(context_tar), (tag,), _final_labels(dockerfile), ())
        self.images[tag] = info
        self.created_at.setdefault(image_id, float(len(self.builds)))
        return BuiltImage(info.image_id, info.size_bytes, info.tags)

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        mounts: Sequence[Mount] = (),
        network_disabled: bool = True,
        user: str | None = None,
        mem_limit: str | None = None,
        timeout_s: float = 600.0,
        environment: Mapping[str, str] | None = None,
    ) -> RunResult:
        call = RunCall(image, tuple(command), tuple(mounts), network_disabled, user, mem_limit, timeout_s)
        self.runs.append(call)
        try:
            handler = self.handlers.get(image)
            if handler is None:
                return RunResult(exit_code=127, logs=f"{command[0]}: not found")
            return handler(command, mounts, dict(environment or {}))
        finally:
            self.removed_containers += 1

    def remove_image(self, ref: str) -> None:
        self.images.pop(ref, None)

    def tag_image(self, ref: str, new_ref: str) -> None:
        info = self.inspect_image(ref)
        self.images[new_ref] = replace(info, tags=tuple(sorted({*info.tags, new_ref})))

    # --- inventory and doctor (envrepro/inventory.py, envrepro/doctor.py) ---
    # Every key of `images` is a ref of its ImageInfo's image: a tag, or the image ID of a dangling image.

    created_at: dict[str, float] = field(default_factory=dict)  # image ID -> epoch seconds
    containers: dict[str, str] = field(default_factory=dict)  # container ID -> the image ID it was made from
    facts: EngineFacts = field(
        default_factory=lambda: EngineFacts(
            DEFAULT_DOCKER_HOST, "27.5.1", "1.47", "linux", "x86_64", "Debian", "overlay2", "/var/lib/docker"
        )
    )

    def list_images(self, label: str) -> list[ImageRecord]:
        key, _, value = label.partition("=")
        by_id: dict[str, list[str]] = {}
        for ref, info in self.images.items():
            if key in info.labels and (not value or info.labels[key] == value):
                by_id.setdefault(info.image_id, []).append(ref)
        return [self._record(image_id, refs) for image_id, refs in by_id.items()]

    def _record(self, image_id: str, refs: list[str]) -> ImageRecord:
        info = self.images[refs[0]]
        tags = tuple(sorted(ref for ref in refs if ref != image_id))
        return ImageRecord(image_id, tags, info.labels, info.size_bytes, self.created_at.get(image_id, 0.0))

    def images_used_by_containers(self) -> frozenset[str]:
        return frozenset(self.containers.values())

    def delete_image(self, ref: str, *, prune: bool = True) -> None:
        info = self.images.get(ref)
        if info is None:
            return
        refs = [r for r, i in self.images.items() if i.image_id == info.image_id and r != info.image_id]
        if len(refs) <= 1 and info.image_id in self.containers.values():
            raise ImageInUseError(ref, "a container uses it")
        del self.images[ref]
        if len(refs) <= 1 and not prune:  # the untagged layers stay: a dangling image
            self.images[info.image_id] = replace(info, tags=())
        elif len(refs) <= 1:
            self.images.pop(info.image_id, None)

    def engine_facts(self) -> EngineFacts:
        return self.facts


def _untar(data: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is not None:
                files[member.name] = handle.read()
    return files


def _success(dockerfile: str) -> list[dict[str, Any]]:
    steps = [line for line in dockerfile.splitlines() if re.match(r"^[A-Z]+\s", line)]
    messages: list[dict[str, Any]] = [
        {"stream": f"Step {n}/{len(steps)} : {line}\n"} for n, line in enumerate(steps, start=1)
    ]
    image_id = hashlib.sha256(dockerfile.encode()).hexdigest()  # content-addressed, as the engine's are
    built = {"stream": f"Successfully built {image_id[:12]}\n"}
    return [*messages, {"aux": {"ID": "sha256:" + image_id}}, built]


def _final_labels(dockerfile: str) -> dict[str, str]:
    """The labels of the last stage: every `name="value"` of its LABEL instructions (continuations too)."""
    final = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[-1].replace("\\\n", " ")
    labels: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("LABEL "):
            labels.update(re.findall(r'([\w.\-]+)="((?:[^"\\]|\\.)*)"', line))
    return labels
