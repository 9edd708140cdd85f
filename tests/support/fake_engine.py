"""A real fake of envrepro's ContainerEngine, for unit tests (no daemon).

Builds read the real context tar and replay scripted engine messages. A container is a real directory
on the host standing for the container's filesystem: `put_archive` extracts the real tar the runner sent
into it (only into a declared volume, and only before the start, as Docker allows on a read-only
rootfs); `start_container` calls the test's handler, which plays the probe and may write files (links,
FIFOs, anything) through `ContainerFs`; `get_archive` streams a real tar of what is there, made by
`tarfile` without following links, exactly as untrusted as the real engine's.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from envrepro.engine_api import (
    DEFAULT_BUILD,
    DEFAULT_DOCKER_HOST,
    BuildOptions,
    BuildStream,
    ContainerRecord,
    ContainerSpec,
    EngineFacts,
    ImageInfo,
    ImageRecord,
    RunResult,
)
from envrepro.errors import EngineError, ImageInUseError
from envrepro.target import BuiltImage


@dataclass(frozen=True)
class ContainerFs:
    """The fake container's filesystem: in-container absolute paths mapped under a host directory."""

    root: Path

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")


RunHandler = Callable[[Sequence[str], ContainerFs, Mapping[str, str]], RunResult]


@dataclass
class _Container:
    spec: ContainerSpec
    fs: ContainerFs
    started: bool = False
    uploads: list[bytes] = field(default_factory=list)
    running: threading.Lock = field(default_factory=threading.Lock)  # held while the handler runs
    sent: threading.Event = field(default_factory=threading.Event)  # `in/go` arrived, or it was removed
    removed: bool = False


@dataclass
class FakeEngine:
    """An in-memory engine; `runs` keeps every container's spec, `uploads` every tar sent in."""

    images: dict[str, ImageInfo] = field(default_factory=dict)
    handlers: dict[str, RunHandler] = field(default_factory=dict)
    build_messages: list[dict[str, Any]] | None = None  # scripted engine messages; default: a success
    builds: list[dict[str, bytes]] = field(default_factory=list)  # the context files of every build
    runs: list[ContainerSpec] = field(default_factory=list)
    commands: list[tuple[str, ...]] = field(default_factory=list)  # as each handler got it (sent ones too)
    uploads: list[bytes] = field(default_factory=list)
    removed_containers: int = 0
    no_cache_builds: int = 0
    build_platforms: list[str | None] = field(default_factory=list)  # `platform` of every build
    cpus: int = 2
    containers: dict[str, _Container] = field(default_factory=dict)
    # For inventory and doctor. Every key of `images` is a ref of its ImageInfo's image: a tag, or the
    # image ID of a dangling image.
    created_at: dict[str, float] = field(default_factory=dict)  # image ID -> epoch seconds
    container_images: dict[str, str] = field(default_factory=dict)  # container ID -> its image ID
    listed: dict[str, ContainerRecord] = field(default_factory=dict)  # what list_containers shows
    facts: EngineFacts = field(
        default_factory=lambda: EngineFacts(
            DEFAULT_DOCKER_HOST, "27.5.1", "1.47", "linux", "x86_64", "Debian", "overlay2", "/var/lib/docker"
        )
    )

    def image_exists(self, ref: str) -> bool:
        """By a tag, or by an image ID, as the engine answers."""
        return ref in self.images or any(info.image_id == ref for info in self.images.values())

    def inspect_image(self, ref: str) -> ImageInfo:
        if ref not in self.images:
            raise EngineError(f"inspect image {ref}", "No such image")
        return self.images[ref]

    def build(self, context_tar: bytes, *, tag: str, options: BuildOptions = DEFAULT_BUILD) -> BuiltImage:
        files = untar(context_tar)
        self.builds.append(files)
        self.no_cache_builds += options.no_cache
        self.build_platforms.append(options.platform)
        dockerfile = files.get("Dockerfile", b"").decode()
        messages = self.build_messages if self.build_messages is not None else _success(dockerfile)
        stream = BuildStream(options.on_event, options.on_output)
        for message in messages:
            stream.feed(message)
        image_id = stream.finish()
        info = ImageInfo(image_id, 1000 * len(context_tar), (tag,), _final_labels(dockerfile), ())
        self.images[tag] = info
        self.created_at.setdefault(image_id, float(len(self.builds)))
        return BuiltImage(info.image_id, info.size_bytes, info.tags)

    def remove_image(self, ref: str) -> None:
        self.images.pop(ref, None)

    def tag_image(self, ref: str, new_ref: str) -> None:
        info = self.inspect_image(ref)
        self.images[new_ref] = replace(info, tags=tuple(sorted({*info.tags, new_ref})))

    # The container primitives

    def cpu_count(self) -> int:
        return self.cpus

    def create_container(self, spec: ContainerSpec) -> str:
        self.runs.append(spec)
        container_id = f"fake-{len(self.runs)}"
        self.containers[container_id] = _Container(
            spec, ContainerFs(Path(tempfile.mkdtemp(prefix="fake-ctr-")))
        )
        return container_id

    def put_archive(self, container: str, path: str, tar: bytes) -> None:
        state = self.containers[container]
        # As a real engine: into a volume only (the root filesystem is read-only), running or not.
        if not any(path == v or path.startswith(v + "/") for v in state.spec.volumes):
            raise EngineError(
                f"copy files into the container at {path}", "container rootfs is marked read-only"
            )
        self.uploads.append(tar)
        target = state.fs.path(path)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            archive.extractall(target, filter="fully_trusted")  # the runner's own tar
        if (target / "in" / "go").exists():
            state.sent.set()

    def start_container(self, container: str, timeout_s: float) -> RunResult:
        state = self.containers[container]
        with state.running:  # the runner waits in a thread of its own (runner.started_probe)
            state.started = True
            handler = self.handlers.get(state.spec.image)
            if handler is None:
                return RunResult(exit_code=127, logs=f"{state.spec.command[0]}: not found")
            command = _sent_arguments(state)
            if command is None:
                return RunResult(exit_code=137, logs="killed while it waited for its arguments")
            self.commands.append(command)
            return handler(command, state.fs, dict(state.spec.environment))

    def get_archive(self, container: str, path: str) -> Generator[bytes, None, None]:
        source = self.containers[container].fs.path(path)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(str(source), arcname=source.name)  # links stay links, FIFOs stay FIFOs
        data = buffer.getvalue()
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    def remove_container(self, container: str) -> None:
        self.listed.pop(container, None)
        self.container_images.pop(container, None)
        state = self.containers.pop(container, None)
        if state is not None:
            state.removed = True
            state.sent.set()  # a probe waiting for its arguments is killed
            with state.running:  # as `docker rm -f`: the container's process has ended before its files go
                pass
            for path in [state.fs.root, *state.fs.root.rglob("*")]:
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)  # the runner's read-only directories, so that they can be removed
            shutil.rmtree(state.fs.root, ignore_errors=True)
            self.removed_containers += 1

    # --- what inventory.py and doctor.py ask of an engine ---

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

    def images_used_by_containers(self, excluding: frozenset[str] = frozenset()) -> frozenset[str]:
        return frozenset(image for c, image in self.container_images.items() if c not in excluding)

    def list_containers(self, label: str) -> list[ContainerRecord]:
        key, _, value = label.partition("=")
        return [c for c in self.listed.values() if key in c.labels and (not value or c.labels[key] == value)]

    def delete_image(self, ref: str, *, prune: bool = True) -> None:
        info = self.images.get(ref)
        if info is None:
            return
        refs = [r for r, i in self.images.items() if i.image_id == info.image_id and r != info.image_id]
        if len(refs) <= 1 and info.image_id in self.container_images.values():
            raise ImageInUseError(ref, "a container uses it")
        del self.images[ref]
        if len(refs) <= 1 and not prune:  # the untagged layers stay: a dangling image
            self.images[info.image_id] = replace(info, tags=())
        elif len(refs) <= 1:
            self.images.pop(info.image_id, None)

    def engine_facts(self) -> EngineFacts:
        return self.facts


def untar(data: bytes) -> dict[str, bytes]:
    """The regular files of a tar, by name."""
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


def _sent_arguments(state: _Container) -> tuple[str, ...] | None:
    """The command, with what runner.launched_probe sends later (None: removed before it was sent), as the
    probe's --args-from reads it."""
    command = state.spec.command
    if "--args-from" not in command:
        return command
    state.sent.wait(60)
    if state.removed or not state.sent.is_set():
        return None
    folder = command[command.index("--args-from") + 1]
    return (*command, *json.loads(state.fs.path(f"{folder}/args.json").read_text(encoding="utf-8")))
