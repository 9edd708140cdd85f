"""pip-compile (`python run.py compile ARGS` = `python -m piptools compile ARGS`), with a file's hash taken
from its index link when the index publishes one.

With --generate-hashes, pip-tools hashes every file of each pinned release (every platform's wheel and the
sdist). It takes the hashes from the index only through PyPI's JSON API; an index without that API, or
whose JSON names files at other URLs (devpi, Artifactory, CodeArtifact, a mirror), gets every file
downloaded and hashed: for TensorFlow's 33 pins that is 476 files, 20-50 s and about 25 s of CPU here
(jazzband/pip-tools#1670 proposes the same fix upstream). The index's own links carry each file's sha256
(PEP 503 `#sha256=` fragments, PEP 691 `hashes`), the very value pip checks a download against, so this
takes that value and downloads only files published without one. A value that is not 64 hexadecimal
digits is ignored (the file is downloaded and hashed), so nothing from the index reaches the lock but a
hash. If pip-tools' internals are not the expected ones, pip-compile runs as it is, only slower.

Runs in the image's interpreter too: Python 3.8 syntax, no envrepro import.
"""

from __future__ import annotations

import re
import runpy

_SHA256 = re.compile(r"[0-9a-f]{64}")


def published_sha256(link: object) -> str | None:
    """The sha256 the index gives for `link`, when it is a well-formed one."""
    hashes = getattr(link, "_hashes", None)
    value = hashes.get("sha256") if isinstance(hashes, dict) else None
    if value is None and getattr(link, "hash_name", None) == "sha256":
        value = getattr(link, "hash", None)
    return value if isinstance(value, str) and _SHA256.fullmatch(value) else None


def use_published_hashes() -> bool:
    """Make pip-tools take a published sha256 before downloading a file to hash it; False if it cannot."""
    try:
        from piptools.repositories import pypi  # noqa: PLC0415 - absent pip-tools: run it unchanged
    except ImportError:
        return False
    hash_file = getattr(pypi.PyPIRepository, "_get_file_hash", None)
    if hash_file is None or getattr(pypi, "FAVORITE_HASH", None) != "sha256":
        return False

    def file_hash(self: object, link: object) -> str:
        published = published_sha256(link)
        return "sha256:" + published if published else hash_file(self, link)

    pypi.PyPIRepository._get_file_hash = file_hash  # type: ignore[method-assign]
    return True


if __name__ == "__main__":
    use_published_hashes()
    runpy.run_module("piptools", run_name="__main__", alter_sys=True)
