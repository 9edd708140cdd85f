"""What a container wrote, read as untrusted data.

The runner downloads the container's output directory as a tar stream through the engine. Code that runs
in the image (custom objects, Lambda layers, preprocessing) can write anything there, so the stream is read
here without trusting it: only regular files and directories with plain relative names are accepted (a
symlink, hardlink, FIFO or device is refused, never followed or opened), no file may be larger than
`MAX_OUTPUT_BYTES` and the stream stops being read once it passes that size in total. JSON must be a
UTF-8 object; .npz files are opened in memory with `allow_pickle=False` after their members' sizes are
checked. Every failure is a `ProbeOutputError` ("the probe's output is not valid: ...").
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from envrepro.errors import ProbeOutputError

if TYPE_CHECKING:
    import numpy as np

MAX_OUTPUT_BYTES = 256 * 1024 * 1024  # per file, and for the whole output directory
_TAR_OVERHEAD = 1024 * 1024  # tar headers and padding beyond the files' own bytes


class _CappedStream(io.RawIOBase):
    """A read-only file over byte chunks that refuses to go past `cap` bytes."""

    def __init__(self, chunks: Iterable[bytes], cap: int) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self._cap = cap
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        self.read_bytes += size
        if self.read_bytes > self._cap:
            raise ProbeOutputError(f"the output is larger than {self._cap // (1024 * 1024)} MiB")
        return size


def read_files(chunks: Iterable[bytes], cap: int = MAX_OUTPUT_BYTES) -> dict[str, bytes]:
    """The regular files of a tar stream of one directory, by name below that directory."""
    stream = _CappedStream(chunks, cap + _TAR_OVERHEAD)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BufferedReader(stream), mode="r|") as archive:
            for member in archive:
                name = _checked_name(member, cap)
                if member.isfile():
                    files[name] = _read_member(archive, member)
                    _check_total(files, cap)
    except (tarfile.TarError, EOFError) as exc:
        raise ProbeOutputError(f"the output directory is not a readable archive ({exc})") from exc
    return files


def _checked_name(member: tarfile.TarInfo, cap: int) -> str:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise ProbeOutputError(f"{member.name!r} is a path outside the output directory")
    name = "/".join(path.parts[1:])  # below the directory itself
    if not (member.isfile() or member.isdir()):
        raise ProbeOutputError(f"{name or member.name} is {_kind(member)}, not a regular file")
    if member.size > cap:
        raise ProbeOutputError(f"{name} is {member.size} bytes, over the {cap // (1024 * 1024)} MiB cap")
    return name


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "a symbolic link"
    if member.islnk():
        return "a hard link"
    if member.isfifo():
        return "a FIFO"
    if member.ischr() or member.isblk():
        return "a device"
    return "not a regular file"


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    if handle is None:
        raise ProbeOutputError(f"{member.name} cannot be read")
    return handle.read(member.size)


def _check_total(files: dict[str, bytes], cap: int) -> None:
    if sum(len(data) for data in files.values()) > cap:
        raise ProbeOutputError(f"the output is larger than {cap // (1024 * 1024)} MiB")


def parse_json(files: dict[str, bytes], name: str) -> dict[str, Any]:
    """The JSON object in `name`: strict UTF-8, an object at the top."""
    try:
        value = json.loads(files[name].decode("utf-8"))
    except KeyError:
        raise ProbeOutputError(f"{name} is missing") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProbeOutputError(f"{name} is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ProbeOutputError(f"{name} is not a JSON object")
    return value


def parse_npz(
    files: dict[str, bytes], name: str, cap: int = MAX_OUTPUT_BYTES
) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays of the .npz in `name`, read in memory, without pickles, uncompressed size capped."""
    import numpy as np  # noqa: PLC0415 - not on the way to parity's container start (parity.py)

    data = files.get(name)
    if data is None:
        raise ProbeOutputError(f"{name} is missing")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > cap:
                raise ProbeOutputError(f"{name} unpacks to more than {cap // (1024 * 1024)} MiB")
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ProbeOutputError(f"{name} is not a valid .npz ({exc})") from exc
