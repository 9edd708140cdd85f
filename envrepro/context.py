"""Build context: the build directory the user reads, and the deterministic tar the engine builds from.

Layout (the templates assume it):
    Dockerfile, requirements.lock.txt, ...   rendered files, written to out_dir
    pip/pip.conf                             always: [global] index-url / extra-index-url / trusted-host,
                                             plus `cert = /tmp/envrepro-pip/ca.pem` when a CA is forwarded
    pip/ca.pem                               the forwarded CA bundle, when there is one

pip/pip.conf can hold index credentials, so it is written to out_dir only when it holds none; otherwise it
lives only in the in-memory tar sent to the engine (and a stale copy in out_dir is removed). The tar is
byte-identical for identical inputs (sorted names, mtime 0, root owner without names, fixed modes, plain
ustar without pax times) so the engine's layer cache hits.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from envrepro.errors import OutputError
from envrepro.fsutil import write_atomic
from envrepro.probe.redact import redact_text
from envrepro.target import BuildSecrets, Rendered

log = logging.getLogger(__name__)

PIP_DIR = "pip"
PIP_CONF = "pip/pip.conf"
PIP_CA = "pip/ca.pem"
# Where the builder stage puts pip/ (a path inside the image, fixed by the templates).
CA_IN_IMAGE = "/tmp/envrepro-pip/ca.pem"  # noqa: S108
_FILE_MODE = 0o644
_DIR_MODE = 0o755


@dataclass(frozen=True)
class BuildContext:
    """A build directory and the exact tar the engine receives for it."""

    out_dir: Path
    files: tuple[str, ...]  # every member of the tar (files only), sorted
    on_disk: tuple[str, ...]  # the members also written to out_dir
    digest: str  # sha256 of the tar bytes
    tar: bytes = field(repr=False)  # the archive the engine receives; may hold credentials: never logged


def write_context(rendered: Rendered, secrets: BuildSecrets, out_dir: Path) -> BuildContext:
    """Write the secret-free files to `out_dir` atomically and return the context with its tar's digest."""
    pip_files = pip_config_files(secrets)
    members = _members(rendered.files, pip_files)
    conf = dict(pip_files)[PIP_CONF].decode()
    keep_off_disk = {PIP_CONF} if redact_text(conf) != conf else set()
    on_disk = tuple(name for name, _ in members if name not in keep_off_disk)
    for name, data in members:
        if name in keep_off_disk:
            _remove_stale(out_dir / name)
        else:
            write_atomic(out_dir / name, data)
    if keep_off_disk:
        log.info("%s holds index credentials: sent to the engine only, not written to %s", PIP_CONF, out_dir)
    tar = _tar_bytes(members)
    return BuildContext(
        out_dir=out_dir,
        files=tuple(name for name, _ in members),
        on_disk=on_disk,
        digest=hashlib.sha256(tar).hexdigest(),
        tar=tar,
    )


def context_tar(ctx: BuildContext) -> bytes:
    """The build context as an uncompressed, deterministic tar archive."""
    return ctx.tar


def pip_config_files(secrets: BuildSecrets) -> tuple[tuple[str, bytes], ...]:
    """pip/pip.conf (always) and pip/ca.pem (when a CA bundle is forwarded)."""
    lines = ["[global]"]
    if secrets.index_url:
        lines.append(f"index-url = {secrets.index_url}")
    if secrets.extra_index_urls:
        lines.append(f"extra-index-url = {' '.join(secrets.extra_index_urls)}")
    if secrets.trusted_hosts:
        lines.append(f"trusted-host = {' '.join(secrets.trusted_hosts)}")
    files = []
    if secrets.ca_bundle is not None:
        lines.append(f"cert = {CA_IN_IMAGE}")
        files.append((PIP_CA, secrets.ca_bundle))
    files.append((PIP_CONF, ("\n".join(lines) + "\n").encode()))
    return tuple(sorted(files))


def _members(
    rendered: Iterable[tuple[str, bytes]], pip_files: Iterable[tuple[str, bytes]]
) -> tuple[tuple[str, bytes], ...]:
    members: dict[str, bytes] = {}
    for name, data in rendered:
        clean = _member_name(name)
        if clean in members:
            raise ValueError(f"build context member {clean!r} given twice")
        if PurePosixPath(clean).parts[0] == PIP_DIR:
            raise ValueError(f"{clean!r}: {PIP_DIR}/ is reserved for the forwarded pip configuration")
        members[clean] = data
    members.update(pip_files)
    return tuple(sorted(members.items()))


def _member_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"build context member {name!r} must be a relative path inside the context")
    return path.as_posix()


def _tar_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for directory in _directories(name for name, _ in members):
            tar.addfile(_info(directory, tarfile.DIRTYPE, _DIR_MODE, 0))
        for name, data in members:
            tar.addfile(_info(name, tarfile.REGTYPE, _FILE_MODE, len(data)), io.BytesIO(data))
    return buffer.getvalue()


def _directories(names: Iterable[str]) -> list[str]:
    dirs = {str(parent) for name in names for parent in PurePosixPath(name).parents if str(parent) != "."}
    return sorted(dirs)


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _remove_stale(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(path, f"cannot remove a stale copy with credentials ({exc.strerror})") from exc
