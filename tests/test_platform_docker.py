"""An arm64 image asked of this machine's x86_64 engine, which has no QEMU registered (binfmt_misc): one
clear line and exit 2 before any long work, and nothing left behind — no container of this session's
run id, no image, no build directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BASE_IMAGE, CASES, OWN_CONTAINERS, own_tag

from envrepro.engine import DockerEngine

pytestmark = [pytest.mark.integration, pytest.mark.docker]

X86 = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
ARM64 = CASES / "tf221-cpu-arm64-snapshot" / "envrepro.lock.json"  # the same, recorded machine aarch64


def _emulates_arm64(engine: DockerEngine) -> bool:
    """Whether the engine may run arm64 containers: QEMU registered here, or an engine elsewhere (unknown)."""
    local = engine.engine_facts().host.startswith("unix://")
    return not local or any(Path("/proc/sys/fs/binfmt_misc").glob("qemu-aarch64*"))


@pytest.mark.parametrize(
    ("snapshot", "flags"),
    [(X86, ("--platform", "linux/arm64")), (ARM64, ())],
    ids=["x86-snapshot-with-platform-flag", "arm64-snapshot"],
)
def test_an_arm64_build_on_an_engine_without_emulation_is_one_clear_error(
    docker_engine: DockerEngine, tmp_path: Path, snapshot: Path, flags: tuple[str, ...]
) -> None:
    if docker_engine.engine_facts().arch not in {"x86_64", "amd64"} or _emulates_arm64(docker_engine):
        pytest.skip("this checks a local x86_64 engine without QEMU for arm64")
    out = tmp_path / "build"
    tag = own_tag("envrepro-test/arm64", "refused")
    argv = ["build", "--snapshot", str(snapshot), "--base-image", BASE_IMAGE, "--out", str(out),
            "--tag", tag, *flags]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "envrepro", *argv], capture_output=True, text=True, check=False
    )

    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(
        f"error: the engine (x86_64) cannot run linux/arm64 containers of {BASE_IMAGE}, so it cannot "
        "build a linux/arm64 image: "
    )
    assert "binfmt" in done.stderr  # the hint: what to do
    assert "Traceback" not in done.stderr
    assert not out.exists()  # stopped before the lock: nothing written
    assert docker_engine.running_containers(OWN_CONTAINERS) == []  # the check's container went
    assert not docker_engine.image_exists(tag)
