"""Atomic file output: an interrupted run leaves the previous file intact.

`staged_file` replaces one file atomically. `staged_pair` replaces a file and a directory that belong
together (a snapshot and its references), under an exclusive lock on the file, directory first and file
last: the file's rename is the commit point. A reader that looks between the two renames (a window of two
system calls) sees the old file with the new directory, or for an instant no directory at all; the
snapshot's recorded reference digest turns either into a clear error, never into a silent mix.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
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
    tmp = _mkstemp(path)
    try:
        yield tmp
        _fsync(tmp)
        tmp.replace(path)
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _mkstemp(path: Path) -> Path:
    """An empty temporary file next to `path`, with the mode a plain open() would give the result."""
    parent = path.parent if str(path.parent) else Path()
    _ensure_dir(parent, path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.chmod(_mode_for(path))  # mkstemp makes 0600
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(path, exc.strerror or str(exc)) from exc
    return tmp


def _mode_for(path: Path) -> int:
    """The existing file's mode, else 0666 minus the process umask."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o7777
    return 0o666 & ~_umask()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


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


@contextlib.contextmanager
def staged_pair(file: Path, directory: Path) -> Iterator[tuple[Path, Path]]:
    """Yield (temporary file, temporary directory) next to the targets; on success both replace their
    targets (see the module's docstring), else both are removed and the targets are left as they were.
    An empty temporary directory removes `directory`: what it held belonged to the previous file."""
    tmp_file = _mkstemp(file)
    tmp_dir: Path | None = None
    try:
        tmp_dir = _mkdtemp(directory)
        yield tmp_file, tmp_dir
        _commit_pair((tmp_file, tmp_dir), (file, directory))
    finally:
        tmp_file.unlink(missing_ok=True)
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _commit_pair(staged: tuple[Path, Path], targets: tuple[Path, Path]) -> None:
    (tmp_file, tmp_dir), (file, directory) = staged, targets
    try:
        _fsync(tmp_file)
        with exclusive(file):
            _swap_dir(tmp_dir, directory)
            tmp_file.replace(file)
    except OSError as exc:
        raise OutputError(file, exc.strerror or str(exc)) from exc


def _mkdtemp(directory: Path) -> Path:
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the result gets what mkdir would give
        return tmp
    except OSError as exc:
        raise OutputError(directory, exc.strerror or str(exc)) from exc


def _swap_dir(staged: Path, directory: Path) -> None:
    """Put `staged` in place of `directory` (two renames), then delete the previous one."""
    old = staged.with_name(staged.name + ".old")
    try:
        if directory.exists():
            directory.replace(old)
        if any(staged.iterdir()):
            staged.replace(directory)
    except OSError as exc:
        raise OutputError(directory, exc.strerror or str(exc)) from exc
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for writing `path`: `.<name>.lock` next to it, flock()ed, waited for, and
    removed again on release (the inode check makes a lock file removed under a waiter safe)."""
    lock = path.with_name(f".{path.name}.lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise OutputError(path, f"cannot create the lock file {lock}: {exc.strerror}") from exc
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(fd, lock):
            break
        os.close(fd)  # the holder before us removed this lock file: take the new one
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        held, named = os.fstat(fd), path.stat()
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def files_sha256(files: Mapping[str, Path]) -> str:
    """One sha256 over named files (name and content), independent of order; a missing file counts."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{_sha256_or_missing(files[name])}\n".encode())
    return digest.hexdigest()


def _sha256_or_missing(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"
