"""What the host sends into an in-image run: one tar for the Engine API's archive upload to /envrepro.

Everything under in/ is owned by root and unwritable (files 0444, directories 0555, no __pycache__, no
times); out/ belongs to the container user (uid 10001), the only place it may write. `outbox` reads back.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envrepro.target import UID


@dataclass(frozen=True)
class InFile:
    """A host file or directory sent into the container at /envrepro/in/<target>."""

    source: Path
    target: str


@dataclass(frozen=True)
class InBytes:
    """Bytes sent into the container at /envrepro/in/<target>: never written on the host (credentials)."""

    data: bytes = field(repr=False)
    target: str


def input_tar(inputs: Sequence[InFile | InBytes], *, with_out: bool = True) -> bytes:
    """`inputs` under in/, and (`with_out`) the empty out/ (not resent to a container that writes there)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_dir_info("in", 0, 0o555))
        for item in inputs:
            if isinstance(item, InBytes):
                _add_bytes(archive, item.data, f"in/{item.target}")
            else:
                _add(archive, item.source, f"in/{item.target}")
        if with_out:
            archive.addfile(_dir_info("out", UID, 0o700))
    return buffer.getvalue()


def _add(archive: tarfile.TarFile, source: Path, name: str) -> None:
    for parent in _parents(name):
        archive.addfile(_dir_info(parent, 0, 0o555))
    archive.add(str(source), arcname=name, recursive=True, filter=_read_only)


def _add_bytes(archive: tarfile.TarFile, data: bytes, name: str) -> None:
    for parent in _parents(name):
        archive.addfile(_dir_info(parent, 0, 0o555))
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uname, info.gname = len(data), 0o444, "root", "root"
    archive.addfile(info, io.BytesIO(data))


def _parents(name: str) -> list[str]:
    parts = name.split("/")[1:-1]
    return [f"in/{'/'.join(parts[: i + 1])}" for i in range(len(parts))]


def _read_only(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "__pycache__" in info.name.split("/"):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o555 if info.isdir() or info.mode & 0o111 else 0o444
    info.mtime = 0
    return info


def _dir_info(name: str, owner: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.uid = info.gid = owner
    info.mode = mode
    return info
