"""Uninstall distributions from the environment of the Python that runs this, as `pip uninstall --yes`
does for the wheel-installed distributions of an envrepro image, without pip's stash.

pip moves every file of a distribution aside before it deletes them. In a Docker build step the venv is
in a lower overlayfs layer, where renaming a file copies it up first and renaming a directory fails over
to a copy: uninstalling TensorFlow that way copied ~1 GB only to delete it (26 s of a 74 s bisect
variant build here). Unlinking a lower file writes a whiteout only (5 s for the same step). The tree left
is pip's: every file its RECORD lists, the bytecode of its modules, and the directories that became
empty (checked against `pip uninstall` in tests/test_image_uninstall.py).

Bisect's variant build pipes this file to the image's Python (templates/variant.Dockerfile.j2):
`python - NAME...`. Standard library only, and Python 3.8 syntax: it runs under the image's Python.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from pathlib import Path


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(name: str) -> importlib.metadata.Distribution | None:
    """The distribution of that name on this Python's path, or None."""
    for dist in importlib.metadata.distributions():
        if canonical(dist.metadata["Name"] or "") == canonical(name):
            return dist
    return None


def recorded_paths(dist: importlib.metadata.Distribution, name: str) -> list[str]:
    """Every file its RECORD lists, and the bytecode of its modules (as pip adds them)."""
    if dist.files is None:
        sys.exit(f"cannot uninstall {name}: it has no RECORD file")
    paths = []
    for entry in dist.files:
        path = os.path.normpath(str(dist.locate_file(entry)))
        paths.append(path)
        if path.endswith(".py"):
            cache = Path(path).parent / "__pycache__"
            paths.extend(str(pyc) for pyc in cache.glob(Path(path).stem + ".*.pyc"))
    return paths


def inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def remove(paths: list[str], prefix: str) -> None:
    """Unlink the files inside `prefix` (pip leaves what is outside the environment), then the
    directories they leave empty, up to the first one that is not."""
    parents = set()
    for path in paths:
        if not inside(path, prefix):
            print(f"not removing {path}: outside the environment {prefix}", file=sys.stderr)
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        parents.add(os.path.dirname(path))
    for directory in sorted(parents, key=len, reverse=True):
        remove_empty(directory, prefix)


def remove_empty(directory: str, prefix: str) -> None:
    """`directory` and its parents inside `prefix`, up to the first that is not empty."""
    while directory != prefix and inside(directory, prefix):
        try:
            os.rmdir(directory)
        except OSError:  # not empty, or gone already
            return
        directory = os.path.dirname(directory)


def main(names: list[str]) -> None:
    prefix = os.path.normpath(sys.prefix)
    for name in names:
        dist = installed(name)
        if dist is None:
            print(f"skipping {name}: it is not installed", file=sys.stderr)
            continue
        shown = f"{dist.metadata['Name']} {dist.version}"
        remove(recorded_paths(dist, name), prefix)
        print(f"uninstalled {shown}")


if __name__ == "__main__":
    main(sys.argv[1:])
