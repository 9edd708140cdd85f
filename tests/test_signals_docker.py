"""SIGTERM and SIGHUP (what CI, `docker stop` and `timeout` send; a closed terminal) end `parity` and
`build` the way Ctrl-C does: the container and the temporary files are removed, exit 143 / 129.

Each test looks only at what it started: its parity containers carry its own ENVREPRO_RUN_ID label, its
build step carries its own marker, its temporary files go to its own TMPDIR.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BASE_IMAGE, CPU_TAG, RUN_ID, OwnImages, _run_cli, own_tag
from dockerfile_parse import DockerfileParser

from envrepro.engine import DockerEngine
from envrepro.engine_api import RUN_ID_LABEL

pytestmark = [pytest.mark.integration, pytest.mark.docker]

SIGNALS = [(signal.SIGTERM, 143), (signal.SIGHUP, 129)]


def wait_for(condition: Callable[[], bool]) -> bool:
    """Poll until `condition` holds (waiting for a step to start: not a time limit on the code)."""
    for _ in range(600):
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
def test_a_signal_during_parity_removes_the_container_and_the_temporary_directory(
    cpu_build: object,
    tf_snapshot: Path,
    tf_models: Path,
    docker_engine: DockerEngine,
    tmp_path: Path,
    signum: int,
    code: int,
) -> None:
    run_id = f"{RUN_ID}-signals-{uuid.uuid4().hex[:8]}"  # this session's, and this test's alone
    own = f"{RUN_ID_LABEL}={run_id}"
    temp = tmp_path / "tmp"
    temp.mkdir()
    argv = [
        "parity",
        "--snapshot",
        str(tf_snapshot),
        "--model",
        str(tf_models / "cnn.keras"),
        "--image",
        CPU_TAG,
    ]
    env = {**os.environ, "ENVREPRO_RUN_ID": run_id, "TMPDIR": str(temp)}
    process = subprocess.Popen(
        [sys.executable, "-m", "envrepro", *argv], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        started = wait_for(lambda: process.poll() is not None or bool(docker_engine.running_containers(own)))
        assert process.poll() is None, f"parity ended before the signal: {process.communicate()[1]}"
        assert started, "the container never started"
        # The files travel through the Engine API: parity keeps nothing in TMPDIR, and leaves nothing there
        process.send_signal(signum)
        _, stderr = process.communicate()
        assert process.returncode == code, stderr
        assert f"interrupted by {signal.Signals(signum).name}" in stderr
        assert "Traceback" not in stderr
        assert docker_engine.running_containers(own) == []
        assert list(temp.iterdir()) == []
    finally:
        process.kill()


# The build step of a real engine build, signalled; the script ends as `envrepro` ends (its signal
# handling and exit policy), so what is tested is what main() does around every stage.
SIGNALLED_BUILD = """
import io, sys, tarfile
from envrepro.cli import exit_code
from envrepro.engine import DockerEngine
from envrepro.engine_api import BuildOptions
from envrepro.signals import terminate_on_signals
dockerfile = b"FROM %s\\nRUN sleep 300 && echo %s\\n"
buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w") as archive:
    info = tarfile.TarInfo("Dockerfile")
    info.size = len(dockerfile)
    archive.addfile(info, io.BytesIO(dockerfile))
try:
    with terminate_on_signals():
        DockerEngine().build(buffer.getvalue(), tag="%s", options=BuildOptions(no_cache=True))
except KeyboardInterrupt as exc:
    sys.exit(exit_code(exc))
"""


def step_containers(engine: DockerEngine, marker: str) -> list[str]:
    """IDs of the containers running our build step (one listing call: no race with their removal)."""
    listed = engine.client.api.containers(all=True)
    return [str(c["Id"]) for c in listed if marker in str(c.get("Command", ""))]


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
def test_a_signal_during_a_build_step_stops_it_and_leaves_no_container(
    docker_engine: DockerEngine, signum: int, code: int
) -> None:
    marker = f"envrepro-signal-marker-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    tag = own_tag("envrepro-test/signalled", signal.Signals(signum).name.lower())
    process = subprocess.Popen(
        [sys.executable, "-c", SIGNALLED_BUILD % (BASE_IMAGE, marker, tag)], stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for(lambda: bool(step_containers(docker_engine, marker))), "the build step never started"
        process.send_signal(signum)
        _, stderr = process.communicate()
        assert process.returncode == code, stderr
        assert "Traceback" not in stderr
        assert wait_for(lambda: not step_containers(docker_engine, marker))  # the engine cancels the step
        assert not docker_engine.image_exists(tag)
    finally:
        process.kill()


# `envrepro build` itself, signalled while a step of its Dockerfile runs. Its base is the test base with a
# `useradd` that first sleeps: the final stage's `RUN groupadd ... && useradd ...` step then runs long
# enough to be signalled, and the base, built by this session, finds that step's container (its ancestor).
# The session's run id is in the base: without it, another session's base is the same image (the same
# Dockerfile, cached) and its step containers would be counted as ours.
SLOW_USERADD = (
    "FROM %s\n"
    "LABEL io.envrepro.test.run=%s\n"
    "RUN mv /usr/sbin/useradd /usr/sbin/useradd.real"
    " && printf '#!/bin/sh\\nsleep 300\\nexec /usr/sbin/useradd.real \"$@\"\\n' > /usr/sbin/useradd"
    " && chmod 755 /usr/sbin/useradd\n"
)
PIP_CERT = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def slow_base(docker_engine: DockerEngine, own_images: OwnImages) -> tuple[str, str]:
    """(tag, image ID) of a base whose `useradd` sleeps 300 s; this session's, removed at its end."""
    dockerfile = (SLOW_USERADD % (BASE_IMAGE, RUN_ID)).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
    tag = own_tag("envrepro-test/slow-useradd", "base")
    docker_engine.build(buffer.getvalue(), tag=tag)
    return tag, own_images.built(tag)


def useradd_steps(engine: DockerEngine, base_id: str) -> list[str]:
    """IDs of the containers of the build step that runs `useradd` on our base (one listing call)."""
    listed = engine.client.api.containers(all=True, filters={"ancestor": base_id})
    return [str(c["Id"]) for c in listed if "useradd" in str(c.get("Command", ""))]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones too: a temporary file left by a write would show), by path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def instructions(dockerfile: bytes) -> list[str]:
    return [item["instruction"] for item in DockerfileParser(fileobj=io.BytesIO(dockerfile)).structure]


def pins(lock: bytes) -> list[str]:
    """The lock's `name==version` entries that carry their hashes (complete entries only)."""
    entries = lock.decode().replace(" \\\n", " ").splitlines()
    return sorted(entry.split()[0] for entry in entries if "==" in entry and "--hash=sha256:" in entry)


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
@pytest.mark.parametrize("out_existed", [False, True], ids=["new-out", "existing-out"])
def test_a_signal_during_a_step_of_envrepro_build_removes_its_containers_and_temporary_files(
    docker_engine: DockerEngine,
    slow_base: tuple[str, str],
    plain_snapshot: Path,
    tmp_path: Path,
    signum: int,
    code: int,
    out_existed: bool,
) -> None:
    base, base_id = slow_base
    run_id = f"{RUN_ID}-signals-{uuid.uuid4().hex[:8]}"  # this session's, and this test's alone
    own = f"{RUN_ID_LABEL}={run_id}"
    temp, out, reference = tmp_path / "tmp", tmp_path / "build", tmp_path / "rendered"
    temp.mkdir()
    tag = own_tag("envrepro-test/signalled-build", f"{signal.Signals(signum).name.lower()}-{out_existed}")
    common = ["build", "--snapshot", str(plain_snapshot), "--base-image", base, "--pip-cert", PIP_CERT,
              "--accept-python-patch"]  # fmt: skip
    # What a finished render of the same inputs writes (it assumes the snapshot's Python 3.11.7; the build
    # inspects the base and writes its 3.11.2 into the Dockerfile and the lock's header)
    rendered = _run_cli([*common, "--out", str(reference), "--render-only"])
    assert rendered.exit_code == 0, rendered.stderr
    user_file = {"NOTES.txt": b"the user's own file\n"} if out_existed else {}
    if out_existed:  # the build directory of an earlier render, plus a file of the user's
        shutil.copytree(reference, out)
        (out / "NOTES.txt").write_bytes(user_file["NOTES.txt"])
    env = {**os.environ, "ENVREPRO_RUN_ID": run_id, "TMPDIR": str(temp)}
    argv = [sys.executable, "-m", "envrepro", *common, "--out", str(out), "--tag", tag]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert wait_for(lambda: bool(useradd_steps(docker_engine, base_id))), "the build step never started"
        process.send_signal(signum)
        _, stderr = process.communicate()
        assert process.returncode == code, stderr
        assert f"interrupted by {signal.Signals(signum).name}" in stderr
        assert "Traceback" not in stderr
        assert docker_engine.running_containers(own) == []  # the lock's and the checks' containers
        assert wait_for(lambda: not useradd_steps(docker_engine, base_id))  # the engine cancels the step
        assert not docker_engine.image_exists(tag)
        assert list(temp.iterdir()) == []
        # The step runs after the build directory is written, each file atomically: what is left is that
        # whole directory (kept, as after a failed step: the next build reuses its lock), no half-written
        # file, no temporary file beside one, and the user's own file as it was.
        expected, left = tree(reference), tree(out)
        assert sorted(left) == sorted({**expected, **user_file}), sorted(left)
        assert all(left[name] == data for name, data in user_file.items())
        assert left["pip/ca.pem"] == Path(PIP_CERT).read_bytes()
        assert left["pip/pip.conf"] == expected["pip/pip.conf"]
        assert left["Dockerfile"].endswith(b'CMD ["python"]\n')
        assert instructions(left["Dockerfile"]) == instructions(expected["Dockerfile"])
        assert pins(left["requirements.lock.txt"]) == pins(expected["requirements.lock.txt"])
        assert pins(left["requirements.lock.txt"]), left["requirements.lock.txt"]
    finally:
        process.kill()
