"""The lock resolved in a throwaway container of the base image, against the fake engine: what goes in
(requirements.in, a pip.conf with the index and the CA, never an image), the command, and what comes out
(one regular file, parsed strictly: a link, an extra file or a pip option line is refused)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import pytest

from envrepro.engine import _create_options
from envrepro.engine_api import ContainerSpec, RunResult
from envrepro.errors import LockError, LockPlatformError
from envrepro.lock import COMPILE_FLAGS, LOCK_FILE, HostEnvironment, compute_lock
from envrepro.lock_container import MAX_LOCK_BYTES, ImageLocker
from envrepro.runner import CONTAINER_USER
from envrepro.target import BuildSecrets, LockedRequirement, Requirement
from tests.support.fake_engine import ContainerFs, FakeEngine, untar
from tests.test_lock import H1, H2, make_target

BASE = "envrepro-test/python:3.11-bookworm"
SECRET = "s3cret-token"
INDEX = BuildSecrets(
    index_url=f"https://user:{SECRET}@private.example/simple",
    extra_index_urls=("https://more.example/simple",),
    ca_bundle=b"-----BEGIN CERTIFICATE-----\nproxy-ca\n-----END CERTIFICATE-----\n",
    trusted_hosts=("private.example",),
)
MAC = HostEnvironment((3, 12), "darwin", "arm64")  # a host whose pip-compile cannot resolve for the image
GOOD_LOCK = f"numpy==2.1.3 \\\n    --hash={H2} \\\n    --hash={H1}\nsix==1.16.0 --hash={H1}\n"


@dataclass
class PipCompileInContainer:
    """Plays the container: keeps what it found under /envrepro/in, writes `write(out_dir)`."""

    write: object = None  # callable(Path) -> None, or None for the good lock
    exit_code: int = 0
    logs: str = ""
    seen: dict[str, str] = field(default_factory=dict)

    def __call__(self, command: Sequence[str], fs: ContainerFs, env: Mapping[str, str]) -> RunResult:
        inputs = fs.path("/envrepro/in")
        self.seen = {p.name: p.read_text() for p in inputs.iterdir() if p.is_file()}
        out = fs.path("/envrepro/out")
        if callable(self.write):
            self.write(out)
        elif self.exit_code == 0:
            (out / "requirements.txt").write_text(GOOD_LOCK)
        return RunResult(self.exit_code, self.logs)


def locker(engine: FakeEngine, platform: str = "linux/amd64") -> ImageLocker:
    return ImageLocker(lambda: engine, BASE, "python3", platform, INDEX)


def lock_with(engine: FakeEngine, tmp_path: Path, **target: object) -> list[LockedRequirement]:
    reqs = (Requirement("numpy", "2.1.3"), Requirement("six", "1.16.0"))
    lock = compute_lock(make_target(*reqs, **target), tmp_path, host=MAC, in_image=locker(engine))
    return list(lock.requirements)


def test_the_lock_is_resolved_in_a_networked_container_of_the_base_and_read_back(tmp_path: Path) -> None:
    play = PipCompileInContainer()
    engine = FakeEngine(handlers={BASE: play})
    locked = lock_with(engine, tmp_path)

    assert locked == [
        LockedRequirement("numpy", "2.1.3", (H1, H2)),
        LockedRequirement("six", "1.16.0", (H1,)),
    ]
    (spec,) = engine.runs
    assert spec.image == BASE and not spec.network_disabled and spec.user == CONTAINER_USER
    assert spec.platform is None and spec.label == "lock"
    assert play.seen["requirements.in"] == "numpy==2.1.3\nsix==1.16.0\n"
    assert f"index-url = https://user:{SECRET}@private.example/simple" in play.seen["pip.conf"]
    assert "cert = /envrepro/in/ca.pem" in play.seen["pip.conf"]
    assert play.seen["ca.pem"].encode() == INDEX.ca_bundle
    assert engine.removed_containers == 1 and not engine.containers
    assert engine.builds == [] and engine.images == {}  # nothing went into an image


def test_credentials_go_in_files_of_the_container_only_never_its_command_or_the_host(tmp_path: Path) -> None:
    engine = FakeEngine(handlers={BASE: PipCompileInContainer()})
    lock_with(engine, tmp_path / "build")

    (spec,) = engine.runs
    assert SECRET not in " ".join(spec.command) and SECRET not in repr(dict(spec.environment))
    (upload,) = engine.uploads
    assert SECRET.encode() in untar(upload)["in/pip.conf"]  # only in the container's volume
    on_host = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p.name for p in on_host] == [LOCK_FILE]
    assert all(SECRET not in p.read_text() for p in on_host)


def test_the_command_installs_the_hosts_pip_tools_and_runs_pip_compile_with_the_host_flags() -> None:
    engine = FakeEngine(handlers={BASE: PipCompileInContainer()})
    locker(engine)("six==1.16.0\n", COMPILE_FLAGS)

    shell, flag, script = engine.runs[0].command
    assert (shell, flag) == ("/bin/sh", "-c")
    assert f"pip-tools=={metadata.version('pip-tools')}" in script
    assert f"pip=={metadata.version('pip')}" in script
    assert "/envrepro/in/pip_compile.py compile " + " ".join(COMPILE_FLAGS) in script
    assert "--output-file /envrepro/out/requirements.txt /envrepro/in/requirements.in" in script
    assert "PIP_CONFIG_FILE=/envrepro/in/pip.conf" in script


def _symlink(out: Path) -> None:
    (out / "requirements.txt").symlink_to("/etc/passwd")


def _extra_file(out: Path) -> None:
    (out / "requirements.txt").write_text(GOOD_LOCK)
    (out / "evil.sh").write_text("rm -rf /")


def _option_line(out: Path) -> None:
    (out / "requirements.txt").write_text("--index-url https://evil.invalid/simple\n" + GOOD_LOCK)


def _too_big(out: Path) -> None:
    (out / "requirements.txt").write_text(GOOD_LOCK + "#" * MAX_LOCK_BYTES)


def _not_utf8(out: Path) -> None:
    (out / "requirements.txt").write_bytes(b"numpy==2.1.3 --hash=\xff\n")


@pytest.mark.parametrize(
    ("write", "said"),
    [
        (_symlink, "symbolic link"),
        (_extra_file, "other files"),
        (_option_line, "pip option line"),
        (_too_big, "MiB"),
        (_not_utf8, "not UTF-8"),
    ],
)
def test_a_hostile_lock_from_the_container_is_refused_and_nothing_is_written(
    tmp_path: Path, write: object, said: str
) -> None:
    engine = FakeEngine(handlers={BASE: PipCompileInContainer(write=write)})
    with pytest.raises(LockError, match=said):
        lock_with(engine, tmp_path)

    assert not (tmp_path / LOCK_FILE).exists()
    assert engine.removed_containers == 1


def test_a_failing_pip_compile_in_the_image_is_a_lock_error_naming_the_pin(tmp_path: Path) -> None:
    logs = f"ERROR: No matching distribution found for six==1.99.0 (https://user:{SECRET}@private.example)\n"
    engine = FakeEngine(handlers={BASE: PipCompileInContainer(exit_code=1, logs=logs)})
    with pytest.raises(LockError) as info:
        lock_with(engine, tmp_path)

    assert info.value.requirement == "six==1.99.0"
    assert SECRET not in str(info.value)


def test_an_arm64_image_from_an_x86_engine_asks_the_engine_for_the_platform() -> None:
    engine = FakeEngine(handlers={BASE: PipCompileInContainer()})
    run = locker(engine, "linux/arm64")("six==1.16.0\n", COMPILE_FLAGS)

    assert run.returncode == 0 and run.output == GOOD_LOCK
    assert engine.runs[0].platform == "linux/arm64"


def test_an_engine_that_cannot_run_the_platform_is_one_clear_error() -> None:
    logs = "exec /bin/sh: exec format error\n"
    engine = FakeEngine(handlers={BASE: PipCompileInContainer(exit_code=1, logs=logs)})
    with pytest.raises(LockPlatformError) as info:
        locker(engine, "linux/arm64")("six==1.16.0\n", COMPILE_FLAGS)

    assert "cannot run linux/arm64 containers" in str(info.value)
    assert info.value.hint is not None and "binfmt" in info.value.hint
    assert info.value.exit_code == 2
    assert engine.removed_containers == 1


def test_the_platform_reaches_the_engines_create_call_only_when_asked() -> None:
    spec = ContainerSpec(image=BASE, command=("true",))

    assert "platform" not in _create_options(spec)
    assert _create_options(replace(spec, platform="linux/arm64"))["platform"] == "linux/arm64"
