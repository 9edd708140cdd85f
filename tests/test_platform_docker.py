"""An arm64 image asked of this machine's x86_64 engines, which have no QEMU registered (binfmt_misc): one
clear line and exit 2 before any long work, and nothing left behind — no container of this session's
run id, no image, no build directory. On the machine's Docker engine and on the extra engines of
tests/test_engines_remote.py (docker-in-docker refuses to create the container; Podman runs the local
amd64 image whatever platform is asked, which the check's `uname -m` catches)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BASE_IMAGE, CASES, OWN_CONTAINERS, own_tag
from engines import ExtraEngine

from envrepro.engine import DockerEngine

pytestmark = [pytest.mark.integration, pytest.mark.docker]

X86 = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
ARM64 = CASES / "tf221-cpu-arm64-snapshot" / "envrepro.lock.json"  # the same, recorded machine aarch64
REFUSED = re.compile(
    rf"error: the engine \((x86_64|amd64)\) cannot run linux/arm64 containers of {re.escape(BASE_IMAGE)}, "
    r"so it cannot build a linux/arm64 image: \S"
)


def _skip_unless_x86_without_emulation(engine: DockerEngine) -> None:
    """These engines run on this machine's kernel: QEMU registered here would let them run arm64."""
    if engine.engine_facts().arch not in {"x86_64", "amd64"} or any(
        Path("/proc/sys/fs/binfmt_misc").glob("qemu-aarch64*")
    ):
        pytest.skip("this checks an x86_64 engine on a machine without QEMU for arm64")


def _build_argv(snapshot: Path, out: Path, tag: str, *flags: str) -> list[str]:
    return ["build", "--snapshot", str(snapshot), "--base-image", BASE_IMAGE, "--out", str(out),
            "--tag", tag, *flags]  # fmt: skip


def _assert_refused_leaving_nothing(
    done: subprocess.CompletedProcess[str], engine: DockerEngine, out: Path, tag: str
) -> None:
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1, done.stderr
    assert REFUSED.match(errors[0]), errors[0]
    assert "binfmt" in done.stderr  # the hint: what to do
    assert "Traceback" not in done.stderr
    assert not out.exists()  # stopped before the lock: nothing written
    assert engine.running_containers(OWN_CONTAINERS) == []  # the check's container went
    assert not engine.image_exists(tag)


@pytest.mark.parametrize(
    ("snapshot", "flags"),
    [(X86, ("--platform", "linux/arm64")), (ARM64, ())],
    ids=["x86-snapshot-with-platform-flag", "arm64-snapshot"],
)
def test_an_arm64_build_on_an_engine_without_emulation_is_one_clear_error(
    docker_engine: DockerEngine, tmp_path: Path, snapshot: Path, flags: tuple[str, ...]
) -> None:
    if not docker_engine.engine_facts().host.startswith("unix://"):
        pytest.skip("this checks the machine's own engine (DOCKER_HOST points elsewhere)")
    _skip_unless_x86_without_emulation(docker_engine)
    out, tag = tmp_path / "build", own_tag("envrepro-test/arm64", "refused")
    done = subprocess.run(
        [sys.executable, "-m", "envrepro", *_build_argv(snapshot, out, tag, *flags)],
        capture_output=True,
        text=True,
        check=False,
    )
    _assert_refused_leaving_nothing(done, docker_engine, out, tag)


def test_an_arm64_build_on_each_extra_engine_is_one_clear_error(
    extra_engine: ExtraEngine, tmp_path: Path
) -> None:
    _skip_unless_x86_without_emulation(extra_engine.engine)
    out, tag = tmp_path / "build", own_tag("envrepro-test/arm64", f"refused-{extra_engine.name}")
    done = extra_engine.cli(_build_argv(ARM64, out, tag))
    _assert_refused_leaving_nothing(done, extra_engine.engine, out, tag)
