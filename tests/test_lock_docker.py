"""The lock resolved in a container of the real base image, against the real engine and the real index
(through this machine's TLS-inspecting proxy, its CA forwarded): the same bytes as the host's pip-compile,
nothing left behind, and one clear error for a platform the engine cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BASE_IMAGE, OWN_CONTAINERS, PLANTED_TOKEN, build_args

from envrepro.cli import main
from envrepro.engine import DockerEngine
from envrepro.engine_api import RUN_LABEL
from envrepro.errors import LockPlatformError
from envrepro.lock import COMPILE_FLAGS
from envrepro.lock_container import ImageLocker
from envrepro.target import BuildSecrets

pytestmark = [pytest.mark.integration, pytest.mark.docker]

CASES = Path(__file__).parent / "cases"
LOCK = "requirements.lock.txt"


LOCK_CONTAINERS = f"{RUN_LABEL}=lock"


def own_lock_containers(engine: DockerEngine) -> set[str]:
    """This session's lock containers: the engine is shared, other runs lock at the same time."""
    return set(engine.running_containers(LOCK_CONTAINERS)) & set(engine.running_containers(OWN_CONTAINERS))


@pytest.fixture(scope="module")
def plain_snapshot(plain_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain-snapshot") / "envrepro.snapshot.json"
    assert main(["snapshot", "--python", str(plain_python), "-o", str(out)]) == 0
    return out


def _lock_both_ways(snap: Path, tmp_path: Path, cert: Path, engine: DockerEngine) -> tuple[bytes, bytes]:
    texts = []
    for place in ("host", "image"):
        out = tmp_path / place
        argv = build_args(snap, out, cert, "--render-only", "--no-reuse-lock", "--lock-in", place)
        assert main(argv) == 0
        texts.append((out / LOCK).read_bytes())
        assert all(PLANTED_TOKEN not in p.read_text() for p in out.rglob("*") if p.is_file())
    assert own_lock_containers(engine) == set()  # the lock container went, with its volume
    return texts[0], texts[1]


@pytest.fixture(scope="module")
def small_locks(
    docker_engine: DockerEngine,
    plain_snapshot: Path,
    planted_cert: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[bytes, bytes]:
    """The small snapshot's lock resolved cold on the host and in the image: (host bytes, image bytes)."""
    out = tmp_path_factory.mktemp("small-locks")
    return _lock_both_ways(plain_snapshot, out, planted_cert, docker_engine)


def test_a_small_snapshot_locks_to_the_same_bytes_on_the_host_and_in_the_image(
    small_locks: tuple[bytes, bytes],
) -> None:
    on_host, in_image = small_locks

    assert in_image == on_host
    assert b"--hash=sha256:" in in_image


def test_a_tensorflow_221_snapshot_locks_to_the_same_bytes_on_the_host_and_in_the_image(
    docker_engine: DockerEngine, planted_cert: Path, tmp_path: Path
) -> None:
    snap = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
    on_host, in_image = _lock_both_ways(snap, tmp_path, planted_cert, docker_engine)

    assert in_image == on_host
    assert b"tensorflow-cpu==2.21.0 \\\n" in in_image


def test_an_unchanged_lock_is_reused_without_a_container(
    plain_snapshot: Path, small_locks: tuple[bytes, bytes], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first = small_locks[1]  # what the image resolved for this snapshot, left in the build directory
    (out / LOCK).write_bytes(first)
    # With only an index that nothing listens on, any resolve would fail (exit 2): reuse needs none.
    again = ["build", "--snapshot", str(plain_snapshot), "--base-image", BASE_IMAGE, "--out", str(out),
             "--render-only", "--lock-in", "image", "--index-url", "https://127.0.0.1:9/simple"]  # fmt: skip
    assert main(again) == 0
    assert (out / LOCK).read_bytes() == first
    assert main([*again, "--no-reuse-lock"]) == 2  # the same run resolving again does fail


def test_an_arm64_lock_on_an_engine_without_emulation_is_one_clear_error(docker_engine: DockerEngine) -> None:
    if docker_engine.engine_facts().arch not in {"x86_64", "amd64"}:
        pytest.skip("this checks an amd64 engine asked for linux/arm64")
    locker = ImageLocker(lambda: docker_engine, BASE_IMAGE, "python3", "linux/arm64", BuildSecrets())
    with pytest.raises(LockPlatformError) as info:
        locker("six==1.16.0\n", COMPILE_FLAGS)

    assert str(info.value).startswith("the engine (x86_64) cannot run linux/arm64 containers")
    assert info.value.exit_code == 2
    assert own_lock_containers(docker_engine) == set()
