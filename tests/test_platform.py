"""The image's platform: the training machine's (the snapshot's `os.machine`) unless `--platform` says
otherwise, refused at the CLI when envrepro builds no such image, on both FROM lines and in the engine's
build, and checked against the engine before any long work. Fake engine only (no daemon).

tests/cases/tf221-cpu-arm64-snapshot is tf221-cpu-snapshot with only `machine` changed to aarch64."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import CASES

from envrepro import snapshot
from envrepro.build import BuildRequest, BuildResult, build
from envrepro.engine_api import RunResult
from envrepro.errors import PlatformUnavailableError, UnsupportedMachineError
from envrepro.resolve import resolve
from tests.support.fake_engine import ContainerFs, FakeEngine
from tests.test_lock_container import PipCompileInContainer

X86 = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
ARM64 = CASES / "tf221-cpu-arm64-snapshot" / "envrepro.lock.json"
BASE = "python:3.11.7-slim-bookworm"  # what resolve picks for these snapshots


def with_machine(machine: str) -> snapshot.Snapshot:
    snap = snapshot.load(X86)
    os_info = snap.environment.os.model_copy(update={"machine": machine})
    return snap.model_copy(update={"environment": snap.environment.model_copy(update={"os": os_info})})


@pytest.mark.parametrize(
    ("machine", "platform"),
    [
        ("x86_64", "linux/amd64"),
        ("AMD64", "linux/amd64"),
        ("aarch64", "linux/arm64"),
        ("arm64", "linux/arm64"),
    ],
)
def test_the_image_platform_is_the_training_machines(machine: str, platform: str) -> None:
    target = resolve(with_machine(machine))

    assert target.platform == platform
    assert target.reason.endswith(f"; {platform} because the snapshot's machine is {machine}")


def test_an_arm64_snapshot_resolves_an_arm64_image_with_aarch64_wheels() -> None:
    target = resolve(snapshot.load(ARM64))

    assert target.platform == "linux/arm64"
    assert target.pip_platforms[0] == "manylinux_2_36_aarch64"
    assert resolve(snapshot.load(CASES / "macos-snapshot" / "envrepro.lock.json")).platform == "linux/arm64"


def test_the_platform_flag_overrides_the_snapshots_machine() -> None:
    target = resolve(snapshot.load(ARM64), platform="linux/amd64")

    assert target.platform == "linux/amd64"
    assert target.pip_platforms[0] == "manylinux_2_36_x86_64"
    assert target.reason.endswith("; linux/amd64 because --platform linux/amd64 was asked for")


@pytest.mark.parametrize("machine", ["ppc64le", "s390x", "armv7l", "i686"])
def test_a_machine_envrepro_builds_no_image_for_names_the_supported_platforms(machine: str) -> None:
    with pytest.raises(UnsupportedMachineError) as info:
        resolve(with_machine(machine))

    assert str(info.value) == (
        f"the snapshot was taken on a {machine!r} machine; envrepro builds images for "
        "linux/amd64, linux/arm64 only"
    )
    assert info.value.hint is not None and "--platform" in info.value.hint
    assert resolve(with_machine(machine), platform="linux/amd64").platform == "linux/amd64"


def test_an_unsupported_machine_is_one_line_and_exit_2_at_the_cli(cli, tmp_path: Path) -> None:
    snap = tmp_path / "envrepro.snapshot.json"
    snap.write_text(ARM64.read_text().replace('"machine": "aarch64"', '"machine": "s390x"'))
    out = tmp_path / "build"
    result = cli("build", "--snapshot", str(snap), "--render-only", "--out", str(out))

    assert result.exit_code == 2
    assert result.error_lines == [
        "error: the snapshot was taken on a 's390x' machine; envrepro builds images for linux/amd64, "
        "linux/arm64 only"
    ]
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "value", ["linux/s390x", "arm64", "linux/arm64/v8", "Linux/ARM64", "", "linux/amd64\nFROM evil"]
)
def test_a_bad_platform_flag_is_exit_2_before_any_work(cli, tmp_path: Path, value: str) -> None:
    out = tmp_path / "build"
    result = cli("build", "--snapshot", str(X86), "--render-only", "--out", str(out), "--platform", value)

    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert result.error_lines[0].startswith(
        f"error: --platform {value!r} is not a platform envrepro builds for"
    )
    assert "linux/amd64 or linux/arm64" in result.stderr
    assert not out.exists()  # nothing resolved, locked or written


# ---------------------------------------------------------------------------------------------------------
# build(): the Dockerfile, the lock container, the engine check and the engine's build


def uname_then_pip_compile(machine: str, exit_code: int = 0) -> PipCompileInContainer:
    """Plays the base image: `uname -m` prints `machine` (or fails), anything else is pip-compile."""

    class Play(PipCompileInContainer):
        def __call__(self, command: Sequence[str], fs: ContainerFs, env: Mapping[str, str]) -> RunResult:
            if tuple(command) == ("uname", "-m"):
                return RunResult(exit_code, f"{machine}\n")
            return super().__call__(command, fs, env)

    return Play()


def run_build(engine: FakeEngine, out: Path, snap: Path = ARM64, **request: object) -> BuildResult:
    return build(BuildRequest(snapshot_path=snap, out_dir=out, lock_in="image", **request), lambda: engine)  # type: ignore[arg-type]


def dockerfile(out: Path) -> str:
    return (out / "Dockerfile").read_text(encoding="utf-8")


def test_render_only_writes_an_arm64_dockerfile_and_locks_for_arm64(tmp_path: Path) -> None:
    engine = FakeEngine(handlers={BASE: uname_then_pip_compile("aarch64")})  # x86_64, with QEMU
    out = tmp_path / "build"
    result = run_build(engine, out, render_only=True)

    assert result.target.platform == "linux/arm64" and result.image is None
    text = dockerfile(out)
    assert f"FROM --platform=linux/arm64 {BASE} AS builder\n" in text
    assert f"\nFROM --platform=linux/arm64 {BASE}\n" in text
    assert "linux/arm64 because the snapshot's machine is aarch64" in text  # the header's Why
    # the engine's check, then the lock container, both for the image's platform; no build
    assert [(run.label, run.platform) for run in engine.runs] == [
        ("platform", "linux/arm64"),
        ("lock", "linux/arm64"),
    ]
    assert engine.runs[0].network_disabled  # `uname -m` needs no network; only the lock container has it
    assert engine.builds == []


def test_render_only_on_an_engine_that_runs_the_wrong_platform_locks_nothing(tmp_path: Path) -> None:
    engine = FakeEngine(handlers={BASE: uname_then_pip_compile("x86_64")})  # as Podman runs a local base
    out = tmp_path / "build"
    with pytest.raises(PlatformUnavailableError):
        run_build(engine, out, render_only=True)

    assert [run.label for run in engine.runs] == ["platform"]  # no lock resolved for the wrong machine
    assert not out.exists()


def test_render_only_for_arm64_needs_no_engine_once_the_lock_is_there(tmp_path: Path) -> None:
    out = tmp_path / "build"
    run_build(FakeEngine(handlers={BASE: uname_then_pip_compile("aarch64")}), out, render_only=True)
    first = dockerfile(out)

    def no_engine() -> FakeEngine:
        raise AssertionError("--render-only with an unchanged lock asked for an engine")

    build(BuildRequest(snapshot_path=ARM64, out_dir=out, render_only=True, lock_in="image"), no_engine)
    assert dockerfile(out) == first


def test_an_engine_that_cannot_run_the_platform_stops_the_build_before_the_lock(tmp_path: Path) -> None:
    engine = FakeEngine(handlers={BASE: uname_then_pip_compile("exec /usr/bin/uname: exec format error", 1)})
    out = tmp_path / "build"
    with pytest.raises(PlatformUnavailableError) as info:
        run_build(engine, out)

    assert str(info.value) == (
        f"the engine (x86_64) cannot run linux/arm64 containers of {BASE}, so it cannot build a "
        "linux/arm64 image: `uname -m` exited 1: exec /usr/bin/uname: exec format error"
    )
    assert info.value.hint is not None and "binfmt" in info.value.hint
    assert info.value.exit_code == 2
    ((check),) = engine.runs  # the check only: no lock container, no build
    assert (check.label, check.platform, check.command) == ("platform", "linux/arm64", ("uname", "-m"))
    assert engine.removed_containers == 1 and engine.builds == []
    assert not out.exists()


def test_a_base_without_a_variant_for_the_platform_is_refused(tmp_path: Path) -> None:
    engine = FakeEngine(handlers={BASE: uname_then_pip_compile("x86_64")})  # ran, but as the engine's own
    with pytest.raises(PlatformUnavailableError) as info:
        run_build(engine, tmp_path / "build")

    assert info.value.detail == "its container runs as x86_64, not aarch64 (no linux/arm64 variant of it)"


def test_an_engine_with_emulation_builds_the_arm64_image(tmp_path: Path) -> None:
    engine = FakeEngine(handlers={BASE: uname_then_pip_compile("aarch64")})
    result = run_build(engine, tmp_path / "build")

    assert result.image is not None
    assert [(run.label, run.platform) for run in engine.runs] == [
        ("platform", "linux/arm64"),
        ("lock", "linux/arm64"),
    ]
    assert engine.build_platforms == ["linux/arm64"]


def test_an_engine_of_the_platforms_own_architecture_needs_no_check(tmp_path: Path) -> None:
    engine = FakeEngine(handlers={BASE: PipCompileInContainer()})
    engine.facts = replace(engine.facts, arch="aarch64")
    run_build(engine, tmp_path / "build")

    assert [(run.label, run.platform) for run in engine.runs] == [("lock", None)]
    assert engine.build_platforms == ["linux/arm64"]


def test_the_flag_sends_an_x86_snapshot_to_an_arm64_build(tmp_path: Path) -> None:
    engine = FakeEngine(handlers={BASE: uname_then_pip_compile("aarch64")})
    result = run_build(engine, tmp_path / "build", snap=X86, platform="linux/arm64")

    assert result.target.platform == "linux/arm64"
    assert engine.build_platforms == ["linux/arm64"]
    assert "--platform=linux/arm64" in engine.builds[0]["Dockerfile"].decode()


def test_an_x86_snapshot_builds_for_linux_amd64_on_an_x86_engine_without_a_check(tmp_path: Path) -> None:
    engine = FakeEngine(handlers={BASE: PipCompileInContainer()})
    run_build(engine, tmp_path / "build", snap=X86)

    assert [run.label for run in engine.runs] == ["lock"]
    assert engine.build_platforms == ["linux/amd64"]
