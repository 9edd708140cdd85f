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
from collections.abc import Generator, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from envrepro import connect  # before the SDK: paramiko loads only for ssh:// (ssh_deferred.py)

# isort: split
import requests
from docker.errors import APIError, ImageNotFound, NotFound

from envrepro.engine_api import (
    DEFAULT_BUILD,
    RUN_ID_LABEL,
    RUN_LABEL,
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
from envrepro.probe.redact import redact_text
from envrepro.target import BuiltImage

log = logging.getLogger(__name__)

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

    def build(self, context_tar: bytes, *, tag: str, options: BuildOptions = DEFAULT_BUILD) -> BuiltImage:
        stream = BuildStream(options.on_event, options.on_output)
        try:
            messages = self.api.build(
                fileobj=io.BytesIO(context_tar),
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,  # remove intermediate containers also when a step fails
                pull=False,
                nocache=options.no_cache,
                decode=True,
                platform=options.platform,
            )
            try:
                for message in messages:
                    stream.feed(message)
            finally:
                _close(messages)  # on Ctrl-C this drops the connection, which cancels the build
        except APIError as exc:
            raise EngineError(f"build {tag}", _short(exc)) from exc
        # By the ID this build made: another build on a shared engine may have taken `tag` meanwhile.
        info = self.inspect_image(stream.finish())
        return BuiltImage(image_id=info.image_id, size_bytes=info.size_bytes, tags=info.tags)

    def cpu_count(self) -> int:
        return int(self.api.info().get("NCPU") or 1)

    def create_container(self, spec: ContainerSpec) -> str:
        options = {**_create_options(spec), "host_config": self.api.create_host_config(**_host_options(spec))}
        try:
            try:
                created = self.api.create_container(spec.image, list(spec.command), **options)
            except ImageNotFound:  # a base the engine has not pulled yet (or not for this platform)
                self.client.images.pull(spec.image, platform=spec.platform)
                created = self.api.create_container(spec.image, list(spec.command), **options)
        except APIError as exc:
            raise EngineError(f"create a container from {spec.image}", _short(exc)) from exc
        return str(created["Id"])

    def put_archive(self, container: str, path: str, tar: bytes) -> None:
        try:
            self.api.put_archive(container, path, tar)
        except APIError as exc:
            raise EngineError(f"copy files into the container at {path}", _short(exc)) from exc

    def start_container(self, container: str, timeout_s: float) -> RunResult:
        """Start, wait (at most `timeout_s`, then kill), then one inspect for the OOM flag and the logs."""
        try:
            self.api.start(container)
        except APIError as exc:
            raise EngineError(f"start the container {container[:12]}", _short(exc)) from exc
        try:
            status = self.api.wait(container, timeout=timeout_s)  # type: ignore[arg-type]  # requests takes a float
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            with contextlib.suppress(APIError):
                self.api.kill(container)
            return RunResult(exit_code=-1, logs=self._logs(container), timed_out=True)
        oom = bool((self.api.inspect_container(container).get("State") or {}).get("OOMKilled"))
        code = int(status.get("StatusCode", -1))
        return RunResult(exit_code=code, logs=self._logs(container), oom_killed=oom)

    def _logs(self, container: str) -> str:
        raw = self.api.logs(container, stdout=True, stderr=True)
        return redact_text(raw.decode("utf-8", errors="replace"))

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
        """IDs of containers (any state) that carry `label`: what parity would have left behind.

        One list request and no inspect per container: a container removed between the two (parity's,
        the moment it ends) would make the SDK's `containers.list()` raise NotFound."""
        return [str(row["Id"]) for row in self._containers(label)]

    def _containers(self, label: str | None = None) -> list[dict[str, Any]]:
        """One listing of every container (any state), with `label` only when given."""
        try:
            filters = {"label": label} if label else None
            rows: list[dict[str, Any]] = self.api.containers(all=True, filters=filters)
        except APIError as exc:
            raise EngineError("list containers", _short(exc)) from exc
        return rows

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

    def images_used_by_containers(self, excluding: frozenset[str] = frozenset()) -> frozenset[str]:
        """IDs of the images any container (running or stopped) but those `excluding` was created from."""
        used = (row for row in self._containers() if str(row.get("Id", "")) not in excluding)
        return frozenset(str(row.get("ImageID", "")) for row in used if row.get("ImageID"))

    def list_containers(self, label: str) -> list[ContainerRecord]:
        """Containers (any state) that carry `label`; for one that has ended, when (one inspect each)."""
        records = []
        for row in self._containers(label):
            state, finished = str(row.get("State", "")), None
            if state in ("exited", "dead"):
                try:
                    finished = _epoch(self.api.inspect_container(row["Id"])["State"].get("FinishedAt", ""))
                except NotFound:  # removed since the listing: nothing left to clean
                    continue
                except APIError as exc:
                    raise EngineError(f"inspect the container {str(row['Id'])[:12]}", _short(exc)) from exc
            records.append(ContainerRecord(str(row["Id"]), str(row.get("ImageID", "")), state,
                                           dict(row.get("Labels") or {}), float(row.get("Created", 0)),
                                           finished))  # fmt: skip
        return records

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


def _create_options(spec: ContainerSpec) -> dict[str, Any]:
    """The low-level API's create arguments; the limits and the lock-down go in `_host_options`."""
    return {
        "user": spec.user,
        "environment": dict(spec.environment),
        "volumes": list(spec.volumes),  # anonymous volumes: writable by the archive API before the start
        "network_disabled": spec.network_disabled,
        "labels": {RUN_LABEL: spec.label, **({RUN_ID_LABEL: spec.run_id} if spec.run_id else {})},
        **({"platform": spec.platform} if spec.platform else {}),
    }


def _host_options(spec: ContainerSpec) -> dict[str, Any]:
    return {
        "mem_limit": spec.memory_bytes,
        "memswap_limit": spec.memory_bytes,  # no swap beyond the memory limit
        "nano_cpus": int(spec.cpus * 1e9) if spec.cpus else None,
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


def _epoch(timestamp: str) -> float | None:
    """The engine's RFC 3339 time (nanoseconds, `Z`) in seconds since the epoch; None for its zero time."""
    found = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", timestamp)
    if found is None or found.group(1).startswith("0001-"):
        return None
    zone = "+00:00" if found.group(3) == "Z" else found.group(3)
    moment = datetime.fromisoformat(found.group(1) + zone)
    return moment.timestamp() + float("0." + (found.group(2) or "0"))
