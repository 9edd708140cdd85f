"""SIGTERM and SIGHUP (what CI, `docker stop` and `timeout` send; a closed terminal) end `parity` and
`build` the way Ctrl-C does: the container and the temporary files are removed, exit 143 / 129.

Each test looks only at what it started: its parity containers carry its own ENVREPRO_RUN_ID label, its
build step carries its own marker, its temporary files go to its own TMPDIR.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BASE_IMAGE, CPU_TAG, RUN_ID, own_tag

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
        assert wait_for(lambda: bool(docker_engine.running_containers(own))), "the container never started"
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
