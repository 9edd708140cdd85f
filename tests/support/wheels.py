"""Small real wheels for tests: a py3-none-any wheel with given files, a console script, a RECORD of sha256
hashes: what pip installs, uninstalls and resolves without an index."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path


def make_wheel(out: Path, name: str, files: Mapping[str, str], script: str | None = None) -> Path:
    """`name` 1.0 as out/<name>-1.0-py3-none-any.whl; `script` is a console_scripts line (`cmd = mod:fn`)."""
    stem = name.replace("-", "_")
    info = f"{stem}-1.0.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
    contents[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: envrepro-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if script is not None:
        contents[f"{info}/entry_points.txt"] = f"[console_scripts]\n{script}\n"
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    contents[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    target = out / f"{stem}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
    return target
