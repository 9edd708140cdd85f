"""The order in which .ci/run's xdist workers take the test files: the longest first, by what earlier runs
measured, so that no worker starts a file of minutes while the other runs out of work.

Every session that is not an xdist worker keeps each test's duration (setup + call + teardown) in
$XDG_CACHE_HOME/envrepro/test-durations.json, merged by test id (a run of a few tests updates only
those). The xdist controller reads the file once and hands it to every worker (their collections must
be in the same order), and each sorts its items by it: files by the sum of their tests' durations,
longest first; files none of whose tests were measured yet go first, in the order tests/conftest.py's
`longest_files_first` gave them (by markers). `--dist loadfile` then hands the files out in that order;
a file still runs whole on one worker, so its module fixtures run once.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path


def durations_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "envrepro" / "test-durations.json"


def load() -> dict[str, float]:
    """The durations earlier runs measured, by test id; {} when there are none or the file is unreadable."""
    try:
        data = json.loads(durations_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}


def save(measured: Mapping[str, float]) -> None:
    """Merge this run's durations into the file, atomically (another session may read or write it)."""
    path = durations_file()
    merged = load() | dict(measured)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as out:
            json.dump(merged, out, indent=0, sort_keys=True)
        os.replace(out.name, path)
    except OSError:
        pass  # only the next run's order depends on it


def longest_first(nodeids: Sequence[str], durations: Mapping[str, float]) -> list[str]:
    """The test ids, their files sorted by measured total, longest first; unmeasured files first, in the
    given order; each file's tests in the given order."""
    files: dict[str, list[str]] = {}
    for nodeid in nodeids:
        files.setdefault(nodeid.split("::", 1)[0], []).append(nodeid)

    def key(file: str) -> float:
        measured = [durations[n] for n in files[file] if n in durations]
        return -sum(measured) if measured else float("-inf")

    return [nodeid for file in sorted(files, key=key) for nodeid in files[file]]  # stable: ties keep order
