"""A host with another Python: envrepro installed from this checkout in a container of Debian trixie.

The container talks to the engine that runs it through the engine's socket (the one bind mount, as a CI
job container reaches its engine); everything else goes in through the Engine API's archive upload, at
paths that do not exist on the engine's host. The host's CA bundle (the TLS-inspecting proxy's CA is in
it) goes in as the container's bundle, and a pip.conf names it, so that pip in the container reaches the
index as pip on this host does. Image: `bash .ci/trixie-host.sh`.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST_IMAGE = os.environ.get("ENVREPRO_TEST_HOST_IMAGE", "envrepro-test/host:trixie")
SOCKET = "/var/run/docker.sock"
WORK = "/srv/envrepro-other-host"  # inside the container only; the test checks that the host has no such path
VENV = "/opt/envrepro"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Done:
    exit_code: int
    output: str


@dataclass(frozen=True)
class OtherHost:
    """A running container of the other host; `run` executes a command in it."""

    container: Any  # docker.models.containers.Container

    def run(self, *argv: str, env: Mapping[str, str] | None = None) -> Done:
        code, output = self.container.exec_run(list(argv), environment=dict(env or {}), demux=False)
        return Done(int(code), (output or b"").decode("utf-8", "replace"))

    def envrepro(self, *argv: str) -> Done:
        return self.run(
            f"{VENV}/bin/envrepro", *argv, env={"ENVREPRO_RUN_ID": os.environ.get("ENVREPRO_RUN_ID", "")}
        )

    def put(self, files: Mapping[str, Path | bytes]) -> None:
        """Copy host files/directories (or bytes) to absolute paths in the container, as root."""
        self.container.put_archive("/", _tar(files))

    def read(self, path: str) -> str:
        done = self.run("cat", path)
        assert done.exit_code == 0, done.output
        return done.output


def build_wheel(out: Path) -> Path:
    """This checkout as a wheel (what `pip install .` would install)."""
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)]
    subprocess.run(argv, check=True, capture_output=True)
    return next(out.glob("envrepro-*.whl"))


@contextmanager
def other_host(client: Any, wheel: Path, labels: Mapping[str, str]) -> Iterator[OtherHost]:
    """A trixie container with envrepro (from `wheel`) installed in a venv; removed on the way out."""
    container = client.containers.run(
        HOST_IMAGE, ["sleep", "infinity"], detach=True, labels=dict(labels),
        volumes={SOCKET: {"bind": SOCKET, "mode": "rw"}},
        environment={"PIP_DEFAULT_TIMEOUT": "180", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    try:
        host = OtherHost(container)
        pip_conf = f"[global]\ncert = {CA_BUNDLE}\n".encode()
        host.put({CA_BUNDLE: Path(CA_BUNDLE), "/etc/pip.conf": pip_conf, f"{WORK}/{wheel.name}": wheel})
        done = host.run("python3", "-m", "venv", VENV)
        assert done.exit_code == 0, done.output
        # --no-compile: envrepro imports a small part of what it installs; that part compiles on first use
        done = host.run(f"{VENV}/bin/pip", "install", "--quiet", "--no-compile", f"{WORK}/{wheel.name}")
        assert done.exit_code == 0, done.output
        yield host
    finally:
        container.remove(force=True, v=True)


def _tar(files: Mapping[str, Path | bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for target, source in files.items():
            name = target.lstrip("/")
            if isinstance(source, bytes):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(source), 0o644
                archive.addfile(info, io.BytesIO(source))
            else:
                archive.add(str(source), arcname=name, recursive=True)
    return buffer.getvalue()
