"""Lock: pin and hash every requirement of a Target with pip-tools, for the image's Python and platform.

What pip-tools can and cannot do for another environment (checked against pip-tools 7.x and pip 23-25):

- Resolution follows the interpreter pip-compile runs in. Environment markers and Requires-Python are
  evaluated for that interpreter; `--pip-args "--python-version/--platform"` are parsed but ignored
  (jazzband/pip-tools#1124, #1382, #1220: "pip-compile must be executed for each environment"). So the lock
  is only computed when envrepro itself runs on Linux, on the image's architecture, with the image's
  Python major.minor; otherwise LockEnvironmentError says which interpreter to run envrepro from. The
  requirements are the complete, exactly pinned closure of the training environment, so a resolve in an
  equal environment adds nothing and drops nothing.
- Hashes are platform-independent: `--generate-hashes` hashes every file of each pinned version on the
  index, because `Resolver.resolve_hashes` runs inside `PyPIRepository.allow_all_wheels()`, which patches
  pip's `Wheel.supported` to accept every platform and Python tag (piptools/repositories/pypi.py). Checked
  here: numpy==2.1.3 locks with one hash per file of that release (macOS and Windows wheels included), so
  `pip install --require-hashes` in the image finds its own wheel's hash whatever the host's glibc is.

The host's pip configuration (index URLs, find-links, constraints, cert) is used for resolving, but the
lock text carries only `name==version` lines and hashes: no index URL, no local path, no credential.
"""

from __future__ import annotations

import ast
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
from typing import Protocol

from envrepro import proc
from envrepro.data import version_tuple
from envrepro.errors import InputFileError, LockEnvironmentError, LockError, NotReproducibleError
from envrepro.fsutil import write_atomic
from envrepro.probe.redact import redact_text
from envrepro.snapshot import normalize_name
from envrepro.target import BuildSecrets, Lock, LockedRequirement, Requirement, Target

log = logging.getLogger(__name__)

LOCK_FILE = "requirements.lock.txt"
DIGEST_PREFIX = "# envrepro-lock-input: "
_LOCK_FORMAT = "envrepro-lock/1"
_COMPILE_TIMEOUT = 900.0

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)")
_HASH = re.compile(r"--hash[= ](?P<hash>[a-z0-9]+:[0-9a-fA-F]+)")
_FAILED_REQUIREMENT = re.compile(
    r"(?:No matching distribution found for|satisfies the requirement)\s+(?P<req>[^\s;(]+)"
)
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le"}
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

    @classmethod
    def current(cls) -> HostEnvironment:
        return cls((sys.version_info.major, sys.version_info.minor), sys.platform, platform.machine())


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
) -> Lock:
    """Write `out_dir/requirements.lock.txt` (pinned and hashed) and return it; reuse it if inputs match.

    `index` replaces the host's pip configuration for resolving (the image's index); None uses the host's.
    """
    included, excluded = partition_requirements(target, exclude, exclude_unreproducible)
    digest = lock_input_digest(target, included, excluded)
    path = out_dir / LOCK_FILE
    if reuse:
        previous = read_lock(path, digest, excluded)
        if previous is not None:
            log.info("lock inputs unchanged (%s): reusing %s", digest[:12], path)
            return previous
    check_lock_environment(target, host or HostEnvironment.current())
    locked = _compile(included, index, runner)
    _warn_pinned_exclusions(locked, excluded)
    text = render_lock_text(digest, target, locked, excluded)
    write_atomic(path, text)
    log.info("locked %d distributions into %s", len(locked), path)
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
        "requirements": sorted(f"{normalize_name(r.name)}=={r.version}" for r in included),
        "excluded": sorted([name, why] for name, why in excluded),
    }
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


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


def check_lock_environment(target: Target, host: HostEnvironment) -> None:
    """Raise LockEnvironmentError unless pip-compile here resolves as it would in the image."""
    want_python = version_tuple(target.python_version)
    want_os, _, want_arch = target.platform.partition("/")
    host_arch = _ARCH.get(host.machine.lower(), host.machine.lower())
    wanted = f"Python {target.python_version} on {target.platform}"
    found = f"Python {host.python[0]}.{host.python[1]} on {host.system}/{host_arch}"
    if not host.system.startswith(want_os or "linux") or host_arch != _ARCH.get(want_arch, want_arch):
        raise LockEnvironmentError(
            wanted,
            found,
            hint=f"run `envrepro build` on a {target.platform} machine (a CI runner, or a "
            f"python:{'.'.join(map(str, want_python))} container with envrepro installed)",
        )
    if host.python != want_python:
        minor = ".".join(map(str, want_python))
        raise LockEnvironmentError(
            wanted,
            found,
            hint=f"run envrepro from a Python {minor} interpreter, e.g. "
            f"`pipx install --python python{minor} envrepro`",
        )


def _compile(
    included: Sequence[Requirement], index: BuildSecrets | None, runner: Runner
) -> tuple[LockedRequirement, ...]:
    if not included:
        return ()
    with tempfile.TemporaryDirectory(prefix="envrepro-lock-") as tmp:
        work = Path(tmp)
        source = work / "requirements.in"
        output = work / "requirements.txt"
        source.write_text("".join(f"{normalize_name(r.name)}=={r.version}\n" for r in included))
        command = _compile_command(source, output)
        env = _compile_env(index, work)
        done = runner(command, env=env, cwd=work, timeout=_COMPILE_TIMEOUT, check=False)
        if done.returncode != 0 or not output.exists():
            raise _lock_error(done.stderr or done.stdout)
        return parse_lock_text(output.read_text(encoding="utf-8"))


def _compile_command(source: Path, output: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "piptools",
        "compile",
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
        "--output-file",
        str(output),
        str(source),
    ]


def _index_config(index: BuildSecrets, work: Path) -> Path:
    """A private pip.conf with the image's index: credentials reach pip through a file, never argv
    (a command line is readable by every local user in /proc)."""
    lines = ["[global]"]
    if index.index_url:
        lines.append(f"index-url = {index.index_url}")
    if index.extra_index_urls:
        lines.append("extra-index-url = " + " ".join(index.extra_index_urls))
    if index.trusted_hosts:
        lines.append("trusted-host = " + " ".join(index.trusted_hosts))
    if index.ca_bundle is not None:
        cert = work / "ca.pem"
        cert.write_bytes(index.ca_bundle)
        lines.append(f"cert = {cert}")
    config = work / "pip.conf"
    config.touch(mode=0o600)
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def _compile_env(index: BuildSecrets | None, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    if index is not None:
        # Resolve against exactly the index the image uses: no host config files, no PIP_* index settings.
        for name in _PIP_ENV_TO_DROP:
            env.pop(name, None)
        env["PIP_CONFIG_FILE"] = str(_index_config(index, work))
    return env


def _lock_error(output: str) -> LockError:
    clean = redact_text(output)
    failed = [m.group("req") for m in _FAILED_REQUIREMENT.finditer(clean)]
    lines = [line.strip() for line in clean.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    tail = errors[-2:] or lines[-3:] or ["pip-compile gave no output"]
    detail = " | ".join(_shorten(line) for line in tail)
    return LockError(failed[-1] if failed else None, detail)


def _shorten(line: str, limit: int = 300) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


def parse_lock_text(text: str) -> tuple[LockedRequirement, ...]:
    """LockedRequirement per `name==version --hash=...` entry of a pip-compile (or envrepro) lock file."""
    locked: dict[str, LockedRequirement] = {}
    for entry in _logical_lines(text):
        if entry.startswith("-") and not entry.startswith(("-e", "--editable")):
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
        f"# Pinned and hashed by envrepro (pip-tools) for Python {target.python_version} on "
        f"{target.platform}. Do not edit: `envrepro build` rewrites it when its inputs change.",
    ]
    if excluded:
        names = ", ".join(sorted({name for name, _ in excluded}))
        lines.append(f"# Not in this lock (left out, see `envrepro build` output): {names}")
    for req in locked:
        lines.append(f"{req.name}=={req.version} \\")
        lines += [f"    --hash={value} \\" for value in req.hashes[:-1]]
        lines.append(f"    --hash={req.hashes[-1]}")
    return "\n".join(lines) + "\n"


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


# --- the host's pip configuration, forwarded to the image's builder stage -------------------------------


def host_build_secrets(env: Mapping[str, str] = os.environ) -> BuildSecrets:
    """Index URLs, trusted hosts and CA bundle from the host's pip configuration (files and PIP_* variables).

    Local sources (file:// indexes, find-links directories) do not exist inside a container: dropped.
    """
    config = _pip_config(env)
    overrides = {
        "index-url": env.get("PIP_INDEX_URL"),
        "extra-index-url": env.get("PIP_EXTRA_INDEX_URL"),
        "trusted-host": env.get("PIP_TRUSTED_HOST"),
        "cert": env.get("PIP_CERT"),
        "find-links": env.get("PIP_FIND_LINKS"),
    }
    config.update({key: value for key, value in overrides.items() if value})
    index_urls = _remote_urls(config.get("index-url", "").split()[:1], "index-url")
    if config.get("find-links"):
        log.info("pip find-links (%s) not forwarded to the image: local to this host", config["find-links"])
    return BuildSecrets(
        index_url=index_urls[0] if index_urls else None,
        extra_index_urls=_remote_urls(config.get("extra-index-url", "").split(), "extra-index-url"),
        ca_bundle=_read_cert(config["cert"]) if config.get("cert") else None,
        trusted_hosts=tuple(config.get("trusted-host", "").split()),
    )


def _pip_config(env: Mapping[str, str]) -> dict[str, str]:
    """pip's merged configuration (`pip config list`): `:env:` over `install` over `global`."""
    done = proc.run([sys.executable, "-m", "pip", "config", "list"], env=env, timeout=60, check=False)
    if done.returncode != 0:
        log.warning("`pip config list` failed; using PIP_* variables only: %s", redact_text(done.stderr))
        return {}
    return parse_pip_config_list(done.stdout)


def parse_pip_config_list(output: str) -> dict[str, str]:
    """Option name -> value from `pip config list` lines such as `global.index-url='https://...'`."""
    by_section: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        key, sep, raw = line.partition("=")
        section, dot, name = key.strip().rpartition(".")
        if not sep or not dot:
            continue
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        by_section.setdefault(section, {})[name.replace("_", "-")] = str(value)
    merged: dict[str, str] = {}
    for section in ("global", "install", ":env:"):
        merged.update(by_section.get(section, {}))
    return merged


def _remote_urls(urls: Sequence[str], option: str) -> tuple[str, ...]:
    kept: list[str] = []
    for url in urls:
        if re.match(r"^https?://", url):
            kept.append(url)
        else:
            log.info("pip %s %s not forwarded to the image: local to this host", option, redact_text(url))
    return tuple(kept)


def _read_cert(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputFileError(
            Path(path),
            f"pip's CA bundle cannot be read ({exc.strerror})",
            hint="fix PIP_CERT or the `cert` setting of your pip configuration",
        ) from exc
