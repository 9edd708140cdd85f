"""envrepro run from a host with another Python: Debian trixie (Python 3.13) in a container, snapshots of
Python 3.11 training environments, the host's engine reached through its socket.

What it proves: the image's lock is resolved for the snapshot's Python, not the Python that runs envrepro
(TensorFlow 2.15.1 has no wheels for Python 3.13: only a lock resolved for the image can build it), and
parity passes from a client whose files are at paths that do not exist on the engine's host (the files can
only reach the container through the Engine API's archives). Needs `bash .ci/trixie-host.sh`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _SESSION_IMAGES, BASE_IMAGE, CPU_TAG, CliResult, _require, _run_cli

sys.path.insert(0, str(Path(__file__).parent / "support"))

from other_host import HOST_IMAGE, WORK, OtherHost, build_wheel, other_host
from owned import LOCK_FILE, LOCKS, keep_lock, own_tag

from envrepro import snapshot
from envrepro.engine import DockerEngine

pytestmark = [pytest.mark.integration, pytest.mark.docker]

# Both cases need the lock resolved in a container of the image (branch `lockrun`): before it, envrepro on
# Python 3.13 refuses with "the lock must be computed for Python 3.11.2 ... but envrepro runs on Python 3.13".
# (test environment fixture, its models fixture, the model, the image's name (this session's tag of it; the
# name alone is the cache tag that keeps its layers for the next run), a pin only the image's lock has,
# the name its lock is kept under between runs or None: resolved cold in the image every run)
# TF 2.15.1 is the case only a lock resolved for the image can build: it resolves cold each run (~2-3 min,
# TensorFlow's wheels through the proxy). TF 2.21's lock is the same work again, so a warm run reuses the
# lock an earlier run resolved in the image, as a user's rebuild in place does: envrepro takes it only
# when the digest of its inputs (pins, the image's Python and platform) is the one it computes now.
CASES = {
    "tf-2.21.0": ("tf_python", "tf_models", "cnn.keras", "tf221", "tensorflow",
                  "other-host-tf221"),
    "tf-2.15.1": ("tf215_python", "tf215_models", "dense.h5", "tf215",
                  "tensorflow-cpu==2.15.1", None),
}  # fmt: skip


@pytest.fixture(scope="module")
def host(docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtherHost]:
    if not docker_engine.image_exists(HOST_IMAGE):
        _require("ENVREPRO_REQUIRE_DOCKER", f"the host image {HOST_IMAGE}", "run `bash .ci/trixie-host.sh`")
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    with other_host(docker_engine.client, wheel, {"io.envrepro.test": "other-host"}) as running:
        yield running


def test_the_other_host_runs_another_python(host: OtherHost) -> None:
    done = host.run("python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
    assert done.output.strip() == "3.13"
    assert host.envrepro("--version").exit_code == 0
    assert not Path(WORK).exists()  # the container's paths are not the engine host's


@pytest.mark.parametrize("case", list(CASES))
def test_build_and_parity_from_another_python(
    case: str, host: OtherHost, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    python_fixture, models_fixture, model_name, name, pin, kept = CASES[case]
    tag = own_tag("envrepro-test/other-host", name)  # another session's build never lands on it
    python: Path = request.getfixturevalue(python_fixture)
    model: Path = request.getfixturevalue(models_fixture) / model_name
    snap = tmp_path / "snap" / "envrepro.lock.json"
    taken = _run_cli(["snapshot", "--python", str(python), "--model", str(model), "--samples", "32",
                      "-o", str(snap)])  # fmt: skip
    assert taken.exit_code == 0, taken.stderr
    assert str(snapshot.load(snap).environment.python.version).startswith("3.11")

    there = f"{WORK}/{case}"
    host.put({f"{there}/snap": snap.parent, f"{there}/model/{model_name}": model})
    kept_lock = LOCKS / kept / LOCK_FILE if kept else None
    if kept_lock is not None and kept_lock.is_file():
        host.put({f"{there}/build/{LOCK_FILE}": kept_lock.read_bytes()})
    built = host.envrepro(
        "build", "--snapshot", f"{there}/snap/envrepro.lock.json", "--base-image", BASE_IMAGE,
        "--out", f"{there}/build", "--tag", tag, "--target", "cpu",
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    _SESSION_IMAGES[0].built(tag)  # its tags (this one, `envrepro:<digest>`) go at the session's end
    _SESSION_IMAGES[0].share_cache(tag, f"envrepro-test/other-host:{name}")
    locked = host.run("sh", "-c", f"cat {there}/build/{LOCK_FILE}")
    assert pin in locked.output
    if kept_lock is not None:
        keep_lock(kept_lock, locked.output)

    parity = host.envrepro(
        "parity", "--model", f"{there}/model/{model_name}", "--snapshot", f"{there}/snap/envrepro.lock.json",
        "--image", tag, "--report", f"{there}/report.json",
    )  # fmt: skip
    assert parity.exit_code == 0, parity.output
    report = json.loads(host.read(f"{there}/report.json"))
    assert report["verdict"] == "pass"
    assert report["snapshot"] == f"{there}/snap/envrepro.lock.json"


def test_parity_from_another_host_on_an_image_built_here(
    host: OtherHost, cpu_build: tuple[CliResult, Path], tf_snapshot: Path, tf_models: Path
) -> None:
    """Parity alone (the image built on this host): passes from paths the engine's host does not have,
    and fails there too when the model is not the one the snapshot recorded."""
    there = f"{WORK}/parity"
    host.put({f"{there}/snap": tf_snapshot.parent, f"{there}/model/cnn.keras": tf_models / "cnn.keras",
              f"{there}/other/dense.h5": tf_models / "dense_otherweights.h5"})  # fmt: skip
    snap = f"{there}/snap/{tf_snapshot.name}"
    passed = host.envrepro("parity", "--model", f"{there}/model/cnn.keras", "--snapshot", snap,
                           "--image", CPU_TAG, "--report", f"{there}/report.json")  # fmt: skip
    assert passed.exit_code == 0, passed.output
    assert json.loads(host.read(f"{there}/report.json"))["verdict"] == "pass"
    failed = host.envrepro("parity", "--model", f"{there}/other/dense.h5", "--snapshot", snap,
                           "--image", CPU_TAG)  # fmt: skip
    assert failed.exit_code == 1, failed.output
