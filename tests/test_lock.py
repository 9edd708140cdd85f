"""Locking: pins and hashes for the image, reuse of an unchanged lock, clear errors, the host's pip config."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from envrepro import pipcompile
from envrepro.errors import InputFileError, LockEnvironmentError, LockError, NotReproducibleError
from envrepro.lock import (
    COMPILE_FLAGS,
    LOCK_FILE,
    HostEnvironment,
    compute_lock,
    host_build_secrets,
    parse_lock_text,
    parse_pip_config_list,
)
from envrepro.lock_container import LockRun
from envrepro.proc import Completed
from envrepro.target import BuildSecrets, LockedRequirement, Requirement, Target

HOST = HostEnvironment((3, 11), "linux", "x86_64")
H1 = "sha256:" + "1" * 64
H2 = "sha256:" + "2" * 64
H3 = "sha256:" + "3" * 64

PIP_COMPILE_OUTPUT = f"""\
--index-url https://user:s3cret@private.example/simple
--extra-index-url file:///opt/pypi/simple
--find-links /opt/wheels

numpy==2.1.3 \\
    --hash={H2} \\
    --hash={H1}
    # via -r requirements.in
six==1.16.0 --hash={H3}
Torch[cuda]==2.1.0+cu118 \\
    --hash={H1}
"""


def make_target(*requirements: Requirement, python: str = "3.11.2", **changes: object) -> Target:
    base: dict[str, object] = {
        "kind": "cpu",
        "variant": "cpu",
        "reason": "no GPU in the snapshot",
        "base_image": "python:3.11.2-slim-bookworm",
        "python_version": python,
        "python_executable": "python3",
        "platform": "linux/amd64",
        "pip_platforms": ("manylinux_2_36_x86_64",),
        "requirements": requirements,
    }
    base.update(changes)
    return Target(**base)  # type: ignore[arg-type]


@dataclass
class FakePipCompile:
    """Stands in for `python -m piptools compile`: records each input file, writes a canned output."""

    output: str = PIP_COMPILE_OUTPUT
    returncode: int = 0
    stderr: str = ""
    inputs: list[str] = field(default_factory=list)
    envs: list[dict[str, str]] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    commands: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(
        self,
        command: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> Completed:
        argv = tuple(os.fspath(part) for part in command)
        self.commands.append(argv)
        self.envs.append(dict(env or {}))
        config = Path((env or {}).get("PIP_CONFIG_FILE", os.devnull))
        self.configs.append(config.read_text() if config.is_file() else "")
        out = Path(argv[argv.index("--output-file") + 1])
        self.inputs.append(Path(argv[-1]).read_text())
        if self.returncode == 0:
            out.write_text(self.output)
        return Completed(argv, self.returncode, "", self.stderr)


REQS = (Requirement("numpy", "2.1.3"), Requirement("six", "1.16.0"), Requirement("torch", "2.1.0+cu118"))


def test_pip_compile_output_becomes_pins_with_sorted_hashes_and_local_labels_kept() -> None:
    locked = parse_lock_text(PIP_COMPILE_OUTPUT)
    assert locked == (
        LockedRequirement("numpy", "2.1.3", (H1, H2)),
        LockedRequirement("six", "1.16.0", (H3,)),
        LockedRequirement("torch", "2.1.0+cu118", (H1,)),
    )


@pytest.mark.parametrize(
    "line",
    [
        "mypkg @ file:///home/u/mypkg",
        "-e file:///home/u/mypkg",
        "git+https://x/y.git#egg=y",
        "numpy>=1.0 --hash=" + H1,
        "numpy==1.0",
    ],
)
def test_an_entry_that_is_not_an_exact_hashed_pin_is_a_lock_error(line: str) -> None:
    with pytest.raises(LockError):
        parse_lock_text(line + "\n")


def test_lock_file_has_pins_and_hashes_but_no_index_urls_paths_or_credentials(tmp_path: Path) -> None:
    lock = compute_lock(make_target(*REQS), tmp_path, runner=FakePipCompile(), host=HOST)

    text = (tmp_path / LOCK_FILE).read_text()
    assert text == lock.text
    assert f"torch==2.1.0+cu118 \\\n    --hash={H1}\n" in text
    for leak in ("s3cret", "file://", "/opt/", "index-url", "find-links", "http"):
        assert leak not in text
    assert text.startswith(f"# envrepro-lock-input: {lock.input_digest}\n")
    assert parse_lock_text(text) == lock.requirements


def test_unchanged_inputs_reuse_the_lock_without_running_pip_compile(tmp_path: Path) -> None:
    fake = FakePipCompile()
    first = compute_lock(make_target(*REQS), tmp_path, runner=fake, host=HOST)
    second = compute_lock(make_target(*REQS), tmp_path, runner=fake, host=HOST)

    assert len(fake.commands) == 1
    assert second == first


@pytest.mark.parametrize(
    "changed",
    [
        make_target(Requirement("numpy", "2.1.2"), *REQS[1:]),
        make_target(*REQS, python="3.11.9"),
        make_target(*REQS, dropped=(("pip", "installer"),)),
        make_target(*REQS, pip_platforms=("manylinux_2_28_x86_64",)),
    ],
)
def test_changed_inputs_compute_the_lock_again(tmp_path: Path, changed: Target) -> None:
    fake = FakePipCompile()
    compute_lock(make_target(*REQS), tmp_path, runner=fake, host=HOST)
    compute_lock(changed, tmp_path, runner=fake, host=HOST)

    assert len(fake.commands) == 2


def test_reuse_false_or_an_edited_lock_file_runs_pip_compile_again(tmp_path: Path) -> None:
    fake = FakePipCompile()
    compute_lock(make_target(*REQS), tmp_path, runner=fake, host=HOST)
    compute_lock(make_target(*REQS), tmp_path, runner=fake, host=HOST, reuse=False)
    path = tmp_path / LOCK_FILE
    path.write_text("# envrepro-lock-input: 0000\n" + path.read_text().split("\n", 1)[1])
    compute_lock(make_target(*REQS), tmp_path, runner=fake, host=HOST)

    assert len(fake.commands) == 3


def test_a_reused_lock_edited_to_add_a_pip_option_is_written_back_without_it(tmp_path: Path) -> None:
    fake = FakePipCompile()
    first = compute_lock(make_target(*REQS), tmp_path, runner=fake, host=HOST)
    path = tmp_path / LOCK_FILE
    digest_line, rest = path.read_text().split("\n", 1)
    path.write_text(f"{digest_line}\n--index-url http://evil.invalid/simple\n-r /etc/shadow\n{rest}")
    reused = compute_lock(make_target(*REQS), tmp_path, runner=fake, host=HOST)

    assert len(fake.commands) == 1
    assert reused.text == first.text == path.read_text()
    assert "evil" not in reused.text and "/etc/shadow" not in reused.text


def test_unreproducible_requirements_are_all_named_with_reason_and_how_to_exclude(tmp_path: Path) -> None:
    target = make_target(
        *REQS,
        Requirement("mypkg", "0.1", reproducible=False, reason="editable install from /home/u/mypkg"),
        Requirement("tool", "1.0", reproducible=False, reason="VCS URL git+https://x/tool"),
    )
    with pytest.raises(NotReproducibleError) as info:
        compute_lock(target, tmp_path, runner=FakePipCompile(), host=HOST)

    message = str(info.value)
    assert "mypkg (editable install from /home/u/mypkg)" in message
    assert "tool (VCS URL git+https://x/tool)" in message
    assert info.value.hint is not None
    assert "--exclude mypkg" in info.value.hint
    assert "--exclude-unreproducible" in info.value.hint
    assert info.value.blocked == (
        ("mypkg", "editable install from /home/u/mypkg"),
        ("tool", "VCS URL git+https://x/tool"),
    )
    assert not (tmp_path / LOCK_FILE).exists()


def test_excluded_and_dropped_requirements_are_reported_and_not_locked(tmp_path: Path) -> None:
    target = make_target(
        *REQS,
        Requirement("mypkg", "0.1", reproducible=False, reason="editable install"),
        Requirement("Other_Pkg", "2.0"),
        dropped=(("tensorflow-metal", "macOS only"),),
    )
    fake = FakePipCompile()
    lock = compute_lock(
        target, tmp_path, exclude=["other.pkg"], exclude_unreproducible=True, runner=fake, host=HOST
    )

    assert fake.inputs == ["numpy==2.1.3\nsix==1.16.0\ntorch==2.1.0+cu118\n"]
    assert lock.excluded == (
        ("mypkg", "editable install; excluded with --exclude-unreproducible"),
        ("other-pkg", "excluded with --exclude"),
        ("tensorflow-metal", "macOS only"),
    )
    assert "# Not in this lock (left out, see `envrepro build` output): mypkg, other-pkg" in lock.text


def test_a_pin_that_does_not_exist_names_it_and_hides_index_credentials(tmp_path: Path) -> None:
    stderr = (
        "Looking in indexes: https://user:s3cret@private.example/simple\n"
        "  ERROR: Could not find a version that satisfies the requirement six==1.99.0 "
        "(from versions: 1.15.0, 1.16.0)\n"
        "Traceback (most recent call last):\n"
        "pip._internal.exceptions.DistributionNotFound: No matching distribution found for six==1.99.0\n"
    )
    fake = FakePipCompile(returncode=1, stderr=stderr)
    with pytest.raises(LockError) as info:
        compute_lock(make_target(*REQS), tmp_path, runner=fake, host=HOST)

    assert info.value.requirement == "six==1.99.0"
    assert "Could not find a version that satisfies the requirement six==1.99.0" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in info.value.detail


def test_the_image_index_replaces_the_host_pip_configuration(tmp_path: Path) -> None:
    fake = FakePipCompile()
    index = BuildSecrets(
        index_url="https://idx.example/simple",
        extra_index_urls=("https://more.example/simple",),
        ca_bundle=b"PEM",
        trusted_hosts=("idx.example",),
    )
    compute_lock(make_target(*REQS), tmp_path, index=index, runner=fake, host=HOST)

    # the index reaches pip-compile through a private config file, never its command line
    assert not any("idx.example" in part for part in fake.commands[0])
    config = fake.configs[0].splitlines()
    assert "index-url = https://idx.example/simple" in config
    assert "extra-index-url = https://more.example/simple" in config
    assert "trusted-host = idx.example" in config
    assert any(line.startswith("cert = ") for line in config)
    assert "PIP_FIND_LINKS" not in fake.envs[0]


OTHER_HOSTS = [
    HostEnvironment((3, 12), "linux", "x86_64"),
    HostEnvironment((3, 11), "darwin", "arm64"),
    HostEnvironment((3, 11), "linux", "aarch64"),
    HostEnvironment((3, 11), "linux", "x86_64", libc=""),  # musl
]


@dataclass
class FakeInImage:
    """Stands in for lock_container.ImageLocker: records what it was asked, answers with a canned run."""

    run: LockRun = field(default_factory=lambda: LockRun(0, "", f"numpy==2.1.3 --hash={H1}\n"))
    asked: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def __call__(self, requirements_in: str, flags: Sequence[str]) -> LockRun:
        self.asked.append((requirements_in, tuple(flags)))
        return self.run


@pytest.mark.parametrize("host", OTHER_HOSTS)
def test_a_host_unlike_the_image_resolves_in_the_image_with_the_host_flags(
    tmp_path: Path, host: HostEnvironment
) -> None:
    fake, in_image = FakePipCompile(), FakeInImage()
    lock = compute_lock(make_target(*REQS), tmp_path, runner=fake, host=host, in_image=in_image)

    assert fake.commands == []
    assert in_image.asked == [("numpy==2.1.3\nsix==1.16.0\ntorch==2.1.0+cu118\n", COMPILE_FLAGS)]
    assert lock.requirements == (LockedRequirement("numpy", "2.1.3", (H1,)),)


def test_a_matching_host_resolves_here_unless_the_image_is_asked_for(tmp_path: Path) -> None:
    fake, in_image = FakePipCompile(), FakeInImage()
    compute_lock(make_target(*REQS), tmp_path / "a", runner=fake, host=HOST, in_image=in_image)
    compute_lock(
        make_target(*REQS), tmp_path / "b", runner=fake, host=HOST, in_image=in_image, lock_in="image"
    )

    assert len(fake.commands) == 1 and len(in_image.asked) == 1
    assert tuple(fake.commands[0][1:3]) == (str(pipcompile.SCRIPT), "compile")  # run.py compile FLAGS -o OUT
    assert tuple(fake.commands[0][3:-3]) == COMPILE_FLAGS


@pytest.mark.parametrize("host", OTHER_HOSTS)
def test_lock_in_host_on_a_host_unlike_the_image_says_what_differs(
    tmp_path: Path, host: HostEnvironment
) -> None:
    with pytest.raises(LockEnvironmentError) as info:
        compute_lock(make_target(*REQS), tmp_path, runner=FakePipCompile(), host=host, lock_in="host")

    assert "Python 3.11.2 on linux/amd64 (glibc)" in str(info.value)
    assert info.value.hint is not None
    assert "--lock-in" in info.value.hint


@pytest.mark.parametrize(
    "output",
    [
        f"--index-url https://evil.invalid/simple\nnumpy==2.1.3 --hash={H1}\n",
        f"-r /etc/shadow\nnumpy==2.1.3 --hash={H1}\n",
        "numpy==2.1.3\n",
        "mypkg @ file:///x\n",
    ],
)
def test_a_lock_from_the_image_with_a_pip_option_or_no_hash_is_refused(tmp_path: Path, output: str) -> None:
    in_image = FakeInImage(run=LockRun(0, "", output))
    with pytest.raises(LockError):
        compute_lock(make_target(*REQS), tmp_path, host=OTHER_HOSTS[0], in_image=in_image)
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_failed_resolve_in_the_image_names_the_pin_and_hides_credentials(tmp_path: Path) -> None:
    log = "ERROR: No matching distribution found for six==1.99.0 (https://u:s3cret@idx.example/simple)\n"
    in_image = FakeInImage(run=LockRun(1, log, None))
    with pytest.raises(LockError) as info:
        compute_lock(make_target(*REQS), tmp_path, host=OTHER_HOSTS[0], in_image=in_image)

    assert info.value.requirement == "six==1.99.0"
    assert "s3cret" not in str(info.value)


def test_a_different_patch_level_of_the_same_python_can_lock(tmp_path: Path) -> None:
    lock = compute_lock(make_target(*REQS, python="3.11.9"), tmp_path, runner=FakePipCompile(), host=HOST)
    assert len(lock.requirements) == 3


# --- the host's pip configuration --------------------------------------------------------------------


def test_pip_config_list_precedence_is_env_then_install_then_global() -> None:
    output = (
        "global.index-url='https://global/simple'\n"
        "install.index-url='https://install/simple'\n"
        ":env:.index-url='https://env/simple'\n"
        "global.trusted-host='a b'\n"
    )
    assert parse_pip_config_list(output) == {"index-url": "https://env/simple", "trusted-host": "a b"}


def test_host_secrets_forward_remote_indexes_and_the_ca_and_drop_local_sources(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nproxy\n-----END CERTIFICATE-----\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\n"
        "index-url = https://user:pw@private.example/simple\n"
        "extra-index-url = file:///opt/pypi/simple https://more.example/simple\n"
        "find-links = /opt/wheels\n"
        "trusted-host = private.example\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PIP_CONFIG_FILE": str(conf)}
    env["PIP_CERT"] = str(ca)

    secrets = host_build_secrets(env)

    assert secrets.index_url == "https://user:pw@private.example/simple"
    assert secrets.extra_index_urls == ("https://more.example/simple",)
    assert secrets.trusted_hosts == ("private.example",)
    assert secrets.ca_bundle == ca.read_bytes()


def test_pip_environment_variables_are_read_and_file_urls_dropped(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "file:///srv/simple",
        "PIP_EXTRA_INDEX_URL": "https://a.example/simple file:///opt/pypi/simple",
    }
    secrets = host_build_secrets(env)

    assert secrets.index_url is None
    assert secrets.extra_index_urls == ("https://a.example/simple",)
    assert secrets.ca_bundle is None


def test_an_unreadable_pip_cert_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PIP_CONFIG_FILE": os.devnull}
    env["PIP_CERT"] = str(tmp_path / "missing.pem")
    with pytest.raises(InputFileError, match="CA bundle"):
        host_build_secrets(env)


# --- the real pip-compile against the real index ------------------------------------------------------

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
# numpy 2.1.3's cp312 Windows wheel: proves the hashes cover every platform's files, not only the host's.
NUMPY_WIN_AMD64_CP312 = "sha256:0d30c543f02e84e92c4b1f415b7c6b5326cbe45ee7882b6b77db7195fb971e3a"


def host_target(*requirements: Requirement) -> Target:
    if not sys.platform.startswith("linux") or platform.machine() not in _ARCH:
        pytest.skip("the real lock is computed on Linux (x86_64 or aarch64) only")
    python = f"{sys.version_info.major}.{sys.version_info.minor}.0"
    return make_target(*requirements, python=python, platform=f"linux/{_ARCH[platform.machine()]}")


@pytest.mark.integration
def test_real_lock_pins_and_hashes_every_platforms_files_without_host_sources(tmp_path: Path) -> None:
    target = host_target(Requirement("numpy", "2.1.3"), Requirement("six", "1.16.0"))
    lock = compute_lock(target, tmp_path)

    by_name = {req.name: req for req in lock.requirements}
    assert by_name["six"].version == "1.16.0"
    assert by_name["numpy"].version == "2.1.3"
    assert NUMPY_WIN_AMD64_CP312 in by_name["numpy"].hashes
    assert all(req.hashes for req in lock.requirements)
    for leak in ("file://", "/opt/", "index-url", "find-links", "http"):
        assert leak not in lock.text


@pytest.mark.integration
def test_real_lock_of_a_pin_that_does_not_exist_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(LockError) as info:
        compute_lock(host_target(Requirement("six", "1.99.0")), tmp_path)

    assert info.value.requirement == "six==1.99.0"
    assert not (tmp_path / LOCK_FILE).exists()


def _local_label_index(root: Path) -> tuple[Path, str]:
    """A file:// simple index holding one tiny wheel whose version has a local label (1.0+cu118)."""
    name = "envrepro_demo-1.0+cu118-py3-none-any.whl"
    files = root / "files"
    files.mkdir(parents=True)
    with zipfile.ZipFile(files / name, "w") as wheel:
        info = "envrepro_demo-1.0+cu118.dist-info"
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: envrepro-demo\nVersion: 1.0+cu118\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    digest = hashlib.sha256((files / name).read_bytes()).hexdigest()
    project = root / "simple" / "envrepro-demo"
    project.mkdir(parents=True)
    (project / "index.html").write_text(f'<a href="../../files/{name}#sha256={digest}">{name}</a>\n')
    return root / "simple", f"sha256:{digest}"


@pytest.mark.integration
def test_real_lock_keeps_a_local_version_label(tmp_path: Path) -> None:
    simple, digest = _local_label_index(tmp_path / "index")
    index = BuildSecrets(index_url=simple.as_uri())
    lock = compute_lock(host_target(Requirement("envrepro-demo", "1.0+cu118")), tmp_path / "out", index=index)

    assert lock.requirements == (LockedRequirement("envrepro-demo", "1.0+cu118", (digest,)),)
    assert "envrepro-demo==1.0+cu118 \\\n" in lock.text
    assert "file://" not in lock.text


@pytest.mark.integration
def test_real_lock_resolves_with_only_what_the_image_will_have(tmp_path: Path) -> None:
    """`envrepro build` passes the forwarded host config: the host's local indexes must not be needed."""
    lock = compute_lock(host_target(Requirement("six", "1.16.0")), tmp_path, index=host_build_secrets())

    assert [(req.name, req.version) for req in lock.requirements] == [("six", "1.16.0")]


CONFLICT_OUTPUT = (
    "ERROR: Cannot install -r /tmp/envrepro-lock-x/requirements.in (line 15), -r /tmp/envrepro-lock-x/"
    "requirements.in (line 27), -r /tmp/envrepro-lock-x/requirements.in (line 29), -r /tmp/envrepro-lock-x/"
    "requirements.in (line 9), -r /tmp/envrepro-lock-x/requirements.in (line 11) and numpy==2.4.6 because"
    " these package versions have conflicting dependencies.\n\nThe conflict is caused by:\n"
    "    The user requested numpy==2.4.6\n    tensorflow-cpu 2.15.1 depends on numpy<2.0.0 and >=1.23.5\n"
)


def test_a_resolver_conflict_is_told_apart_from_an_index_failure_even_when_its_line_is_shortened() -> None:
    from envrepro.lock import _lock_error

    conflict = _lock_error(CONFLICT_OUTPUT)
    assert conflict.conflict and "conflicting dependencies" not in conflict.detail  # shortened away
    missing = _lock_error("ERROR: No matching distribution found for tensorflow-cpu==9.9\n")
    assert not missing.conflict and missing.requirement == "tensorflow-cpu==9.9"
    unreachable = _lock_error("WARNING: Retrying ... connection refused\nERROR: Could not fetch URL\n")
    assert not unreachable.conflict
