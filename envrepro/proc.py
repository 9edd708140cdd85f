"""The one place that starts subprocesses: logs the (redacted) command, raises CommandError on failure."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from envrepro.errors import CommandError
from envrepro.probe.redact import redact_text

log = logging.getLogger(__name__)


class Completed(NamedTuple):
    """A finished command: what ran (redacted only where logged), its exit code and its text output."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> Completed:
    """Run `command` (never through a shell) and capture its output as text."""
    argv = tuple(os.fspath(part) for part in command)
    log.debug("run: %s", redact_text(" ".join(argv)))
    try:
        proc = subprocess.run(
            argv,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, "", f"{argv[0]}: not found ({exc.strerror})") from exc
    except PermissionError as exc:
        raise CommandError(argv, 126, "", f"{argv[0]}: not executable ({exc.strerror})") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, -1, "", f"timed out after {timeout:.0f} s") from exc
    done = Completed(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return done
