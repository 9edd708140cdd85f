"""The build context: secret-free files on disk, a deterministic tar for the engine, pip config forwarded."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from envrepro.context import context_tar, pip_config_files, write_context
from envrepro.target import BuildSecrets, Rendered

RENDERED = Rendered(
    files=(
        ("requirements.lock.txt", b"six==1.16.0 \\\n    --hash=sha256:" + b"1" * 64 + b"\n"),
        ("Dockerfile", b"FROM python:3.11.2-slim-bookworm\n"),
        ("probe/envrepro_probe.py", b"print('probe')\n"),
    )
)
CA = b"-----BEGIN CERTIFICATE-----\nproxy CA\n-----END CERTIFICATE-----\n"
PUBLIC = BuildSecrets(index_url="https://pypi.example/simple", ca_bundle=CA)
PRIVATE = BuildSecrets(
    index_url="https://user:s3cret@private.example/simple",
    extra_index_urls=("https://pypi.org/simple", "https://more.example/simple"),
    trusted_hosts=("private.example",),
)


def members(tar: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return {info.name: info for info in archive.getmembers()}


def contents(tar: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return {
            info.name: archive.extractfile(info).read()  # type: ignore[union-attr]
            for info in archive.getmembers()
            if info.isfile()
        }


def test_pip_conf_carries_the_indexes_trusted_hosts_and_the_ca_path() -> None:
    files = dict(pip_config_files(PRIVATE))
    assert files["pip/pip.conf"] == (
        b"[global]\n"
        b"index-url = https://user:s3cret@private.example/simple\n"
        b"extra-index-url = https://pypi.org/simple https://more.example/simple\n"
        b"trusted-host = private.example\n"
    )
    assert "pip/ca.pem" not in files

    files = dict(pip_config_files(BuildSecrets(ca_bundle=CA)))
    assert files["pip/pip.conf"] == b"[global]\ncert = /tmp/envrepro-pip/ca.pem\n"
    assert files["pip/ca.pem"] == CA


def test_pip_conf_is_always_there_even_with_nothing_to_forward() -> None:
    assert dict(pip_config_files(BuildSecrets())) == {"pip/pip.conf": b"[global]\n"}


def test_the_same_inputs_give_a_byte_identical_tar(tmp_path: Path) -> None:
    first = write_context(RENDERED, PUBLIC, tmp_path / "a")
    reordered = Rendered(files=tuple(reversed(RENDERED.files)))
    second = write_context(reordered, PUBLIC, tmp_path / "b")

    assert context_tar(first) == context_tar(second)
    assert first.digest == second.digest


def test_changing_the_ca_changes_only_the_pip_members(tmp_path: Path) -> None:
    before = contents(context_tar(write_context(RENDERED, PUBLIC, tmp_path / "a")))
    other = BuildSecrets(index_url=PUBLIC.index_url, ca_bundle=CA.replace(b"proxy", b"other"))
    after = contents(context_tar(write_context(RENDERED, other, tmp_path / "b")))

    assert before.keys() == after.keys()
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"pip/ca.pem"}


def test_tar_metadata_is_normalised_for_the_layer_cache(tmp_path: Path) -> None:
    tar = context_tar(write_context(RENDERED, PUBLIC, tmp_path))
    infos = members(tar)

    assert list(infos) == [
        "pip",
        "probe",
        "Dockerfile",
        "pip/ca.pem",
        "pip/pip.conf",
        "probe/envrepro_probe.py",
        "requirements.lock.txt",
    ]
    for info in infos.values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert info.pax_headers == {}
        assert info.mode == (0o755 if info.isdir() else 0o644)


def test_rendered_files_are_written_for_the_user_to_read(tmp_path: Path) -> None:
    ctx = write_context(RENDERED, PUBLIC, tmp_path)

    for name, data in RENDERED.files:
        assert (tmp_path / name).read_bytes() == data
    assert (tmp_path / "pip" / "ca.pem").read_bytes() == CA
    assert (tmp_path / "pip" / "pip.conf").exists()  # no credentials in it: `docker build build/` works
    assert ctx.on_disk == ctx.files
    assert not list(tmp_path.rglob("*.tmp"))


def test_pip_conf_with_credentials_goes_to_the_engine_only(tmp_path: Path) -> None:
    write_context(RENDERED, PUBLIC, tmp_path)  # an earlier run left a credential-free pip.conf
    ctx = write_context(RENDERED, PRIVATE, tmp_path)

    assert not (tmp_path / "pip" / "pip.conf").exists()
    assert "pip/pip.conf" in ctx.files
    assert "pip/pip.conf" not in ctx.on_disk
    assert b"s3cret" in contents(context_tar(ctx))["pip/pip.conf"]
    assert "s3cret" not in repr(ctx)
    assert not any(b"s3cret" in path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside", "pip/pip.conf", "pip/other"])
def test_rendered_files_stay_inside_the_context_and_out_of_pip(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"context|reserved"):
        write_context(Rendered(files=((name, b"x"),)), BuildSecrets(), tmp_path)
