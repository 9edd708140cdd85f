"""Lock: pin and hash every requirement of a Target with pip-tools, for the image's Python and platform.

What pip-tools can and cannot do for another environment (checked against pip-tools 7.x and pip 23-25):

- Resolution follows the interpreter pip-compile runs in. Environment markers and Requires-Python are
  evaluated for that interpreter; `--pip-args "--python-version/--platform"` are parsed but ignored
  (jazzband/pip-tools#1124, #1382, #1220: "pip-compile must be executed for each environment"). So the
  lock is resolved where the image's interpreter is: in a throwaway container of the base image
  (lock_container.py), unless the host is the same environment (Linux, same libc family, architecture
  and Python major.minor), where the host's pip-compile gives the same bytes faster. `lock_in` chooses:
  "auto" (the host when it matches, else the image), "host" (LockEnvironmentError if it does not match)
  or "image". The requirements are the complete, exactly pinned closure of the training environment, so
  a resolve in an equal environment adds nothing and drops nothing; the same pip-tools and pip flags
  (COMPILE_FLAGS) run in both places.
- Hashes are platform-independent: `--generate-hashes` hashes every file of each pinned version on the
  index, because `Resolver.resolve_hashes` runs inside `PyPIRepository.allow_all_wheels()`, which patches
  pip's `Wheel.supported` to accept every platform and Python tag (piptools/repositories/pypi.py). Checked
  here: numpy==2.1.3 locks with one hash per file of that release (macOS and Windows wheels included), so
  `pip install --require-hashes` in the image finds its own wheel's hash whatever the host's glibc is.
- Each file's hash is the one its index publishes (PEP 503/691 links: the value pip checks a download
  against) where pip-tools would download the file to hash it: pip-tools takes published hashes only from
  PyPI's JSON API, so any other index (devpi, Artifactory, a mirror) had every file of every pinned release
  downloaded. Both places run pip-compile through envrepro/pipcompile/run.py for that.

The host's pip configuration (index URLs, find-links, constraints, cert) is used for resolving, but the
lock text carries only `name==version` lines and hashes: no index URL, no local path, no credential.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from envrepro import pipcompile, proc
from envrepro.data import version_tuple
from envrepro.errors import LockEnvironmentError, LockError, NotReproducibleError
from envrepro.fsutil import write_atomic
from envrepro.grammar import requirement_line
from envrepro.lock_container import ARCH, LockRun
from envrepro.lock_io import parse_lock_text, read_lock, render_lock_text, requirements_in
from envrepro.pipconfig import host_build_secrets, index_config, parse_pip_config_list
from envrepro.probe.redact import redact_text
from envrepro.snapshot import normalize_name
from envrepro.target import BuildSecrets, Lock, LockedRequirement, Requirement, Target

__all__ = [
    "COMPILE_FLAGS",
    "LOCK_FILE",
    "HostEnvironment",
    "LockIn",
    "check_lock_environment",
    "compute_lock",
    "host_build_secrets",
    "lock_input_digest",
    "parse_lock_text",
    "parse_pip_config_list",
    "partition_requirements",
]

log = logging.getLogger(__name__)

LOCK_FILE = "requirements.lock.txt"
_LOCK_FORMAT = "envrepro-lock/1"
_COMPILE_TIMEOUT = 900.0

_FAILED_REQUIREMENT = re.compile(
    r"(?:No matching distribution found for|satisfies the requirement)\s+(?P<req>[^\s;(]+)"
)
_CONFLICT = re.compile(r"ResolutionImpossible|conflicting dependencies")  # pip's resolver, not the index
LockIn = Literal["auto", "host", "image"]
COMPILE_FLAGS = (
    "--no-config",  # a project's [tool.pip-tools] must not change what the lock means
    "--resolver=backtracking",
    "--generate-hashes",
    "--allow-unsafe",  # pin setuptools/pip too when something depends on them
    "--strip-extras",
    "--no-header",  # envrepro writes its own, without temp paths or the command line
    "--no-annotate",
    "--no-emit-index-url",
    "--no-emit-find-links",
    "--no-emit-trusted-host",
    "--no-emit-options",
    "--quiet",
)
_PIP_ENV_TO_DROP = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "PIP_CONSTRAINT",
    "PIP_NO_INDEX",
)


class Runner(Protocol):
    """The shape of `envrepro.proc.run` that locking needs (tests pass a fake that writes the output)."""

    def __call__(
        self,
        command: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> proc.Completed: ...


@dataclass(frozen=True)
class HostEnvironment:
    """The interpreter pip-compile would resolve for."""

    python: tuple[int, int]
    system: str  # sys.platform
    machine: str  # platform.machine()
    libc: str = "glibc"  # platform.libc_ver()[0]; "" where it is not glibc (musl)

    @classmethod
    def current(cls) -> HostEnvironment:
        python = (sys.version_info.major, sys.version_info.minor)
        return cls(python, sys.platform, platform.machine(), platform.libc_ver()[0])


class InImage(Protocol):
    """Runs pip-compile with `flags` on a requirements.in text in the image (lock_container.ImageLocker)."""

    def __call__(self, requirements_in: str, flags: Sequence[str]) -> LockRun: ...


def compute_lock(
    target: Target,
    out_dir: Path,
    *,
    exclude: Sequence[str] = (),
    exclude_unreproducible: bool = False,
    index: BuildSecrets | None = None,
    reuse: bool = True,
    runner: Runner = proc.run,
    host: HostEnvironment | None = None,
    lock_in: LockIn = "auto",
    in_image: InImage | None = None,
) -> Lock:
    """Write `out_dir/requirements.lock.txt` (pinned and hashed) and return it; reuse it if inputs match.

    `index` replaces the host's pip configuration for resolving (the image's index); None uses the host's.
    `in_image` resolves in the image, where `lock_in` and the host (see `lock_place`) say to.
    """
    included, excluded = partition_requirements(target, exclude, exclude_unreproducible)
    digest = lock_input_digest(target, included, excluded)
    path = out_dir / LOCK_FILE
    previous = read_lock(path, digest, excluded) if reuse else None
    if previous is not None:
        log.info("lock inputs unchanged (%s): reusing %s", digest[:12], path)
        locked = previous.requirements
    else:
        if lock_place(target, host or HostEnvironment.current(), lock_in) == "host":
            locked = _compile(included, index, runner)
        else:
            locked = _compile_in_image(included, in_image)
        _warn_pinned_exclusions(locked, excluded)
        log.info("locked %d distributions into %s", len(locked), path)
    # Written from the parsed pins even when reused: a lock file edited on disk keeps no pip option.
    text = render_lock_text(digest, target, locked, excluded)
    if previous is None or previous.text != text:
        write_atomic(path, text)
    return Lock(text=text, requirements=locked, excluded=excluded, input_digest=digest)


def partition_requirements(
    target: Target, exclude: Sequence[str], exclude_unreproducible: bool
) -> tuple[tuple[Requirement, ...], tuple[tuple[str, str], ...]]:
    """Split target.requirements into (to lock, excluded with why); raise for unexcluded unreproducibles."""
    wanted_out = {normalize_name(name) for name in exclude}
    included: list[Requirement] = []
    excluded: list[tuple[str, str]] = [(normalize_name(name), why) for name, why in target.dropped]
    blocked: list[tuple[str, str]] = []
    for req in target.requirements:
        name = normalize_name(req.name)
        if name in wanted_out:
            excluded.append((name, _why_excluded(req, "--exclude")))
        elif not req.reproducible and exclude_unreproducible:
            excluded.append((name, _why_excluded(req, "--exclude-unreproducible")))
        elif not req.reproducible:
            blocked.append((name, req.reason))
        else:
            included.append(req)
    if blocked:
        raise NotReproducibleError(sorted(blocked))
    unknown = wanted_out - {normalize_name(req.name) for req in target.requirements}
    if unknown:
        log.warning("--exclude names not among the requirements: %s", ", ".join(sorted(unknown)))
    return tuple(sorted(included, key=lambda r: normalize_name(r.name))), tuple(sorted(set(excluded)))


def _why_excluded(req: Requirement, option: str) -> str:
    if req.reproducible:
        return f"excluded with {option}"
    return f"{req.reason or 'not installable from an index'}; excluded with {option}"


def lock_input_digest(
    target: Target, included: Sequence[Requirement], excluded: Sequence[tuple[str, str]]
) -> str:
    """sha256 of everything that decides the lock's content: pins, Python, platform, exclusions."""
    canonical = {
        "format": _LOCK_FORMAT,
        "python": target.python_version,
        "platform": target.platform,
        "pip_platforms": sorted(target.pip_platforms),
        "requirements": sorted(requirement_line(r.name, r.version) for r in included),
        "excluded": sorted([name, why] for name, why in excluded),
    }
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def lock_place(target: Target, host: HostEnvironment, lock_in: LockIn) -> Literal["host", "image"]:
    """Where to resolve: "host" only when asked or (auto) when the host resolves exactly as the image."""
    if lock_in == "image":
        return "image"
    if lock_in == "host":
        check_lock_environment(target, host)
        return "host"
    try:
        check_lock_environment(target, host)
    except LockEnvironmentError as exc:
        log.info("resolving the lock in the image: %s", exc.message)
        return "image"
    return "host"


def check_lock_environment(target: Target, host: HostEnvironment) -> None:
    """Raise LockEnvironmentError unless pip-compile here resolves as it would in the image."""
    want_python = version_tuple(target.python_version)
    want_os, _, want_arch = target.platform.partition("/")
    want_libc = "musl" if any(tag.startswith("musllinux") for tag in target.pip_platforms) else "glibc"
    host_arch = ARCH.get(host.machine.lower(), host.machine.lower())
    host_libc = host.libc or "musl"
    wanted = f"Python {target.python_version} on {target.platform} ({want_libc})"
    found = f"Python {host.python[0]}.{host.python[1]} on {host.system}/{host_arch} ({host_libc})"
    same_system = host.system.startswith(want_os or "linux") and host_libc == want_libc
    if not same_system or host_arch != ARCH.get(want_arch, want_arch) or host.python != want_python[:2]:
        raise LockEnvironmentError(
            wanted,
            found,
            hint="leave --lock-in at auto (or set it to image): the lock is then resolved in a container "
            "of the image",
        )


def _compile_in_image(
    included: Sequence[Requirement], in_image: InImage | None
) -> tuple[LockedRequirement, ...]:
    if not included:
        return ()
    if in_image is None:
        raise LockError(None, "resolving in the image needs a container engine, and none was given")
    run = in_image(requirements_in(included), COMPILE_FLAGS)
    if run.returncode != 0 or run.output is None:
        raise _lock_error(run.log)
    return parse_lock_text(run.output, allow_options=False)


def _compile(
    included: Sequence[Requirement], index: BuildSecrets | None, runner: Runner
) -> tuple[LockedRequirement, ...]:
    if not included:
        return ()
    with tempfile.TemporaryDirectory(prefix="envrepro-lock-") as tmp:
        work = Path(tmp)
        source = work / "requirements.in"
        output = work / "requirements.txt"
        source.write_text(requirements_in(included), encoding="utf-8")
        command = _compile_command(source, output)
        env = _compile_env(index, work)
        done = runner(command, env=env, cwd=work, timeout=_COMPILE_TIMEOUT, check=False)
        if done.returncode != 0 or not output.exists():
            raise _lock_error(done.stderr or done.stdout)
        return parse_lock_text(output.read_text(encoding="utf-8"))


def _compile_command(source: Path, output: Path) -> list[str]:
    """pip-compile through envrepro/pipcompile/run.py (the index's published hashes), as in the image."""
    return [
        sys.executable,
        str(pipcompile.SCRIPT),
        "compile",
        *COMPILE_FLAGS,
        "--output-file",
        str(output),
        str(source),
    ]


def _compile_env(index: BuildSecrets | None, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    if index is not None:
        # Resolve against exactly the index the image uses: no host config files, no PIP_* index settings.
        for name in _PIP_ENV_TO_DROP:
            env.pop(name, None)
        env["PIP_CONFIG_FILE"] = str(index_config(index, work))
    return env


def _lock_error(output: str) -> LockError:
    clean = redact_text(output)
    failed = [m.group("req") for m in _FAILED_REQUIREMENT.finditer(clean)]
    lines = [line.strip() for line in clean.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    tail = errors[-2:] or lines[-3:] or ["pip-compile gave no output"]
    detail = " | ".join(_shorten(line) for line in tail)
    conflict = _CONFLICT.search(clean) is not None
    return LockError(failed[-1] if failed else None, detail, conflict=conflict)


def _shorten(line: str, limit: int = 300) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _warn_pinned_exclusions(locked: Sequence[LockedRequirement], excluded: Sequence[tuple[str, str]]) -> None:
    out = {name for name, _ in excluded}
    for req in locked:
        if req.name in out:
            log.warning(
                "%s was left out but another requirement needs it: the lock pins %s==%s from the index",
                req.name,
                req.name,
                req.version,
            )
