"""The training side of parity: the recorded model, its reference arrays and the recorded preprocessing.

Reference files live next to the snapshot; each array is checked against the digest the snapshot recorded
before anything is compared with it. Parity reads them while the image runs (`load_references`): what it
needs to start the container (`find_model`, `reference_path`, `preprocess_run`) reads no array, and NumPy
is imported only by the first read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envrepro.errors import EnvreproError, ReferenceCorruptError, ReferenceMissingError
from envrepro.probe.digests import array_digest
from envrepro.snapshot import ModelRecord, PreprocessRecord, Snapshot

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

Arrays = dict[str, "np.ndarray[Any, Any]"]


@dataclass(frozen=True)
class PreprocessRun:
    """The recorded preprocessing, where its reference arrays are, and the function to replay in the image."""

    record: PreprocessRecord
    reference_path: Path
    spec: str


@dataclass(frozen=True)
class References:
    """The training side's arrays, each checked against the digest the snapshot recorded."""

    model: Arrays  # the model's inputs and outputs
    preprocessing: Arrays  # the preprocessing's, empty when it is not compared


def load_references(base: Path, record: ModelRecord, pre: PreprocessRun | None) -> References:
    """The model's reference arrays and the preprocessing's (if compared), verified."""
    model = load_reference(base, record)
    return References(model, verified(pre.reference_path, pre.record.arrays_sha256) if pre else {})


def find_model(snap: Snapshot, model: Path, snapshot_path: Path) -> ModelRecord:
    """The recorded model with a reference: by path as given, as resolved, or by file name."""
    candidates = [m for m in snap.models if m.reference is not None]
    for match in (
        lambda m: m.path == str(model),
        lambda m: (snapshot_path.parent / m.path).resolve() == model.resolve(),
        lambda m: Path(m.path).name == model.name,
    ):
        found = [m for m in candidates if match(m)]
        if len(found) == 1:
            return found[0]
    raise ReferenceMissingError(str(model), [m.path for m in candidates], snapshot_path)


def reference_path(base: Path, record: ModelRecord) -> Path:
    assert record.reference is not None
    return _existing(base / record.reference.file)


def _existing(path: Path) -> Path:
    """`path`, a file (it goes into the container before its arrays are read: `load_references`)."""
    if not path.is_file():
        raise ReferenceCorruptError(path, "the file is missing")
    return path


def load_reference(base: Path, record: ModelRecord) -> Arrays:
    assert record.reference is not None
    return verified(reference_path(base, record), record.reference.arrays_sha256)


def verified(path: Path, digests: Mapping[str, str]) -> Arrays:
    """The arrays of the .npz at `path`, each matching its recorded digest."""
    if not path.is_file():
        raise ReferenceCorruptError(path, "the file is missing")
    arrays = read_npz(path)
    for key, digest in digests.items():
        if key not in arrays or array_digest(arrays[key]) != digest:
            raise ReferenceCorruptError(
                path, f"array {key} does not match the digest recorded in the snapshot"
            )
    return arrays


def read_npz(path: Path) -> Arrays:
    import numpy as np  # noqa: PLC0415 - parity imports it while the image runs (bench/parity_bench.py)

    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise ReferenceCorruptError(path, str(exc)) from exc


def preprocess_run(snap: Snapshot, snapshot_path: Path, override: str | None) -> PreprocessRun | None:
    """The snapshot's preprocessing to replay (its reference read by `load_references`); None when none was
    recorded."""
    recorded = snap.preprocessing
    if recorded is None:
        if override:
            raise EnvreproError(
                f"{snapshot_path} has no recorded preprocessing to compare --preprocess with",
                hint="record it in the training environment: envrepro snapshot --preprocess F --raw FILE.npz",
            )
        return None
    if recorded.error is not None or not recorded.file:
        log.warning("the snapshot's preprocessing failed when it was recorded; it is not compared")
        return None
    spec = override or _recorded_spec(recorded.function, snapshot_path.parent)
    return PreprocessRun(recorded, _existing(snapshot_path.parent / recorded.file), spec)


def _recorded_spec(spec: str, base: Path) -> str:
    """A recorded FILE.py:FUNCTION as given at snapshot time: from here, else next to the snapshot."""
    module, _, function = spec.rpartition(":")
    if module.endswith(".py") and not Path(module).is_file() and (base / module).is_file():
        return f"{base / module}:{function}"
    return spec
