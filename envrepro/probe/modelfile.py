"""A model on disk, read without Keras: its format, its digest, and what its file records.

Standard library at import; h5py is imported only to read an .h5 (it comes with every TensorFlow).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import Any

try:
    from .failures import ModelProbeError
except ImportError:  # run as a script: main.py put this directory on sys.path
    from failures import ModelProbeError  # type: ignore[import-not-found,no-redef]


def model_format(path: str) -> str:
    """savedmodel, keras or h5; anything else is a ModelProbeError."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return "savedmodel"
        raise ModelProbeError("unsupported", "directory has no saved_model.pb, so it is not a SavedModel")
    if not os.path.exists(path):
        raise ModelProbeError("not_found", "no such file or directory")
    lowered = path.lower()
    if lowered.endswith(".keras"):
        return "keras"
    if lowered.endswith((".h5", ".hdf5")):
        return "h5"
    raise ModelProbeError(
        "unsupported", "unknown model format (expected .h5, .keras or a SavedModel directory)"
    )


def file_digest(path: str) -> str:
    """sha256 of a file, or of a directory tree (relative paths and contents, in sorted order)."""
    digest = hashlib.sha256()
    if os.path.isfile(path):
        _hash_file(digest, path)
        return digest.hexdigest()
    for base, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(base, name)
            digest.update(os.path.relpath(full, path).replace(os.sep, "/").encode() + b"\0")
            _hash_file(digest, full)
    return digest.hexdigest()


def _hash_file(digest: Any, path: str) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def _h5_attribute(path: str, name: str) -> str:
    import h5py

    with h5py.File(path, "r") as handle:
        value = handle.attrs.get(name, "")
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _keras_member(path: str, member: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(member))


def read_config(path: str, fmt: str) -> Any:
    """The model's configuration as saved (None for a SavedModel, or when it cannot be read)."""
    try:
        if fmt == "h5":
            return json.loads(_h5_attribute(path, "model_config") or "null")
        if fmt == "keras":
            return _keras_member(path, "config.json")
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the loader itself
        return None
    return None


def saved_keras_version(path: str, fmt: str) -> str:
    """The Keras version recorded in the file at save time, where the format records it."""
    try:
        if fmt == "h5":
            return _h5_attribute(path, "keras_version")
        if fmt == "keras":
            return str(_keras_member(path, "metadata.json").get("keras_version", ""))
    except Exception:  # noqa: BLE001 - informative only
        return ""
    return ""
