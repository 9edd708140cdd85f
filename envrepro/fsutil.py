"""Atomic file output: an interrupted run leaves the previous file intact."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from envrepro.errors import OutputError


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` through a temporary file in the same directory and an atomic rename."""
    payload = data.encode() if isinstance(data, str) else data
    with staged_file(path) as tmp:
        tmp.write_bytes(payload)


@contextlib.contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically, else it is removed."""
    parent = path.parent if str(path.parent) else Path()
    _ensure_dir(parent, path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.chmod(_mode_for(path))  # mkstemp makes 0600; the result gets the mode a plain open() would give
        yield tmp
        _fsync(tmp)
        tmp.replace(path)
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _mode_for(path: Path) -> int:
    """The existing file's mode, else 0666 minus the process umask."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def staged_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; on success it replaces `path`, else it is removed."""
    parent = path.parent if str(path.parent) else Path()
    _ensure_dir(parent, path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc
    old = parent / f".{path.name}.old"
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.replace(old)
        tmp.replace(path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ensure_dir(parent: Path, path: Path) -> None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc
    if not os.access(parent, os.W_OK):
        raise OutputError(path, "directory is not writable")


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
