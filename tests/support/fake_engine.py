"""A real fake of envrepro's ContainerEngine, for unit tests (no daemon).

Builds read the real context tar and replay scripted engine messages. A container is a real directory
on the host standing for the container's filesystem: `put_archive` extracts the real tar the runner sent
into it (only into a declared volume, and only before the start, as Docker allows on a read-only
rootfs); `start_container` calls the test's handler, which plays the probe and may write files (links,
FIFOs, anything) through `ContainerFs`; `get_archive` streams a real tar of what is there, made by
`tarfile` without following links, exactly as untrusted as the real engine's.
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from envrepro.engine import BuildStream, ContainerSpec, ImageInfo, OnEvent, RunResult
from envrepro.errors import EngineError
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


@dataclass
class FakeEngine:
    """An in-memory engine; `runs` keeps every container's spec, `uploads` every tar sent in."""

    images: dict[str, ImageInfo] = field(default_factory=dict)
    handlers: dict[str, RunHandler] = field(default_factory=dict)
    build_messages: list[dict[str, Any]] | None = None  # scripted engine messages; default: a success
    builds: list[dict[str, bytes]] = field(default_factory=list)  # the context files of every build
    runs: list[ContainerSpec] = field(default_factory=list)
    uploads: list[bytes] = field(default_factory=list)
    removed_containers: int = 0
    no_cache_builds: int = 0
    cpus: int = 2
    containers: dict[str, _Container] = field(default_factory=dict)

    def image_exists(self, ref: str) -> bool:
        return ref in self.images

    def inspect_image(self, ref: str) -> ImageInfo:
        if ref not in self.images:
            raise EngineError(f"inspect image {ref}", "No such image")
        return self.images[ref]

    def build(
        self, context_tar: bytes, *, tag: str, on_event: OnEvent | None = None, no_cache: bool = False
    ) -> BuiltImage:
        files = untar(context_tar)
        self.builds.append(files)
        self.no_cache_builds += no_cache
        dockerfile = files.get("Dockerfile", b"").decode()
        messages = self.build_messages if self.build_messages is not None else _success(dockerfile)
        stream = BuildStream(on_event)
        for message in messages:
            stream.feed(message)
        image_id = stream.finish()
        labels = dict(re.findall(r'^LABEL ([\w.\-]+)="([^"]*)"', dockerfile, flags=re.MULTILINE))
        info = ImageInfo(image_id, 1000 * len(context_tar), (tag,), labels, ())
        self.images[tag] = info
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
        if state.started or not any(path == v or path.startswith(v + "/") for v in state.spec.volumes):
            raise EngineError(
                f"copy files into the container at {path}", "container rootfs is marked read-only"
            )
        self.uploads.append(tar)
        target = state.fs.path(path)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            archive.extractall(target, filter="fully_trusted")  # the runner's own tar

    def start_container(self, container: str, timeout_s: float) -> RunResult:
        state = self.containers[container]
        state.started = True
        handler = self.handlers.get(state.spec.image)
        if handler is None:
            return RunResult(exit_code=127, logs=f"{state.spec.command[0]}: not found")
        return handler(state.spec.command, state.fs, dict(state.spec.environment))

    def get_archive(self, container: str, path: str) -> Generator[bytes, None, None]:
        source = self.containers[container].fs.path(path)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(str(source), arcname=source.name)  # links stay links, FIFOs stay FIFOs
        data = buffer.getvalue()
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    def remove_container(self, container: str) -> None:
        state = self.containers.pop(container, None)
        if state is not None:
            for path in [state.fs.root, *state.fs.root.rglob("*")]:
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)  # the runner's read-only directories, so that they can be removed
            shutil.rmtree(state.fs.root, ignore_errors=True)
            self.removed_containers += 1


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
    return [*messages, {"aux": {"ID": "sha256:" + "f" * 64}}, {"stream": "Successfully built ffffffffffff\n"}]
