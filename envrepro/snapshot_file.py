"""The snapshot on disk: its default name, its reference directory, and writing both together.

`envrepro.snapshot.json` (formerly `envrepro.lock.json`, still read with a note) and, next to it,
`envrepro.snapshot.ref/` with the reference arrays. They are written as a pair (fsutil.staged_pair): only
on success, under a lock, and the JSON records the references' digest, which `snapshot.load` checks.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from envrepro.fsutil import files_sha256, staged_pair

if TYPE_CHECKING:
    from envrepro.snapshot import Snapshot

log = logging.getLogger(__name__)

DEFAULT_NAME = "envrepro.snapshot.json"
LEGACY_NAME = "envrepro.lock.json"  # the name before 0.2; "lock" now means the requirements lock only


def default_path(directory: Path = Path()) -> Path:
    """The snapshot to read when none is named: the default name, else the old name (with a note)."""
    current, legacy = directory / DEFAULT_NAME, directory / LEGACY_NAME
    if not current.exists() and legacy.exists():
        log.warning("%s is the old name: rename it to %s (and %s/ to %s/)", legacy, DEFAULT_NAME,
                    reference_dir(legacy).name, reference_dir(current).name)  # fmt: skip
        return legacy
    return current


def reference_dir(output: Path) -> Path:
    """Where reference arrays live: next to the snapshot, `<name without .json>.ref/`."""
    stem = output.name[: -len(".json")] if output.name.endswith(".json") else output.name
    return output.with_name(stem + ".ref")


def write_snapshot(snap: Snapshot, output: Path, sources: Mapping[str, Path]) -> Snapshot:
    """Write the JSON and its reference files (`sources`: name in the snapshot -> file to copy) as a pair;
    return the snapshot as written, with the references' digest."""
    ref_dir = reference_dir(output)
    with staged_pair(output, ref_dir) as (tmp_json, tmp_dir):
        staged = {name: tmp_dir / Path(name).name for name in sources}
        for name, source in sorted(sources.items()):
            shutil.copyfile(source, staged[name])
        if staged:
            snap = snap.model_copy(update={"references_sha256": files_sha256(staged)})
        tmp_json.write_text(snap.to_json(), encoding="utf-8")
    return snap
