"""Lock text: read and write requirements files. Every line written is rebuilt from parsed values.

`requirements_in` (pip-compile's input) and `render_lock_text` (the lock the image installs) emit only
`name==version` lines made by `grammar.requirement_line`, `--hash=` options checked by `grammar.hash_option`,
and comments escaped by `grammar.comment_line`: no value can add a pip option (`--index-url`, `-r FILE`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from envrepro.errors import LockError
from envrepro.grammar import comment_line, hash_option, requirement_line
from envrepro.probe.redact import redact_text
from envrepro.snapshot import normalize_name
from envrepro.target import Lock, LockedRequirement, Requirement, Target

log = logging.getLogger(__name__)

DIGEST_PREFIX = "# envrepro-lock-input: "

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash[= ](?P<hash>[a-z0-9]+:[0-9a-fA-F]+)")


def read_lock(path: Path, digest: str, excluded: tuple[tuple[str, str], ...]) -> Lock | None:
    """The lock at `path` if it was computed from inputs with `digest`, else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    first = text.split("\n", 1)[0]
    if first != DIGEST_PREFIX + digest:
        return None
    try:
        locked = parse_lock_text(text)
    except LockError as exc:
        log.warning("%s does not parse (%s): computing it again", path, exc)
        return None
    return Lock(text=text, requirements=locked, excluded=excluded, input_digest=digest)


def parse_lock_text(text: str, *, allow_options: bool = True) -> tuple[LockedRequirement, ...]:
    """LockedRequirement per `name==version --hash=...` entry of a pip-compile (or envrepro) lock file.

    Option lines (index URLs, find-links) are dropped, or refused with `allow_options=False` (a lock
    that came out of a container, where pip-compile was told to write none)."""
    locked: dict[str, LockedRequirement] = {}
    for entry in _logical_lines(text):
        if entry.startswith("-") and not entry.startswith(("-e", "--editable")):
            if not allow_options:
                raise LockError(None, f"the lock has a pip option line: {redact_text(entry)[:200]}")
            continue  # options (index URLs, find-links): never carried into the lock
        match = _PIN.match(entry)
        if match is None:
            raise LockError(
                redact_text(entry.split()[0]), f"not an exact pin from an index: {redact_text(entry)[:200]}"
            )
        name = normalize_name(match.group("name"))
        hashes = tuple(sorted(set(_HASH.findall(entry))))
        if not hashes:
            raise LockError(f"{name}=={match.group('version')}", "the index reported no file hashes")
        locked[name] = LockedRequirement(name, match.group("version"), hashes)
    return tuple(locked[name] for name in sorted(locked))


def _logical_lines(text: str) -> list[str]:
    entries: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            entries.append(current.strip())
        current = ""
    if current.strip():
        entries.append(current.strip())
    return entries


def render_lock_text(
    digest: str,
    target: Target,
    locked: Sequence[LockedRequirement],
    excluded: Sequence[tuple[str, str]],
) -> str:
    """Deterministic lock file: the digest line, a short header, then sorted pins with sorted hashes."""
    lines = [
        DIGEST_PREFIX + digest,
        comment_line(
            (
                "Pinned and hashed by envrepro (pip-tools) for Python ",
                target.python_version,
                " on ",
                target.platform,
                ". Do not edit: `envrepro build` rewrites it when its inputs change.",
            )
        ),
    ]
    if excluded:
        names = ", ".join(sorted({name for name, _ in excluded}))
        lines.append(comment_line(("Not in this lock (left out, see `envrepro build` output): ", names)))
    for req in locked:
        lines += lock_entry(req)
    return "\n".join(lines) + "\n"


def lock_entry(req: LockedRequirement) -> list[str]:
    """The lines of one pinned requirement: `name==version \\` then one `--hash=` per line."""
    if not req.hashes:
        raise LockError(f"{req.name}=={req.version}", "the index reported no file hashes")
    options = [hash_option(value) for value in req.hashes]
    return [f"{requirement_line(req.name, req.version)} \\"] + [
        f"    {option}" + (" \\" if n < len(options) - 1 else "") for n, option in enumerate(options)
    ]


def requirements_in(requirements: Sequence[Requirement]) -> str:
    """pip-compile's input: one canonical `name==version` line per requirement, nothing else."""
    return "".join(requirement_line(req.name, req.version) + "\n" for req in requirements)
