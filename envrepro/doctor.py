"""`envrepro doctor`: can a build succeed here? One check per line: the engine, its storage driver, free disk
where it keeps images, the package index through the host's pip configuration, the base image, and the
host/engine combination. Each check is a value; `render` and the CLI turn them into lines.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import requests

from envrepro import proc, snapshot
from envrepro.engine_api import ContainerEngine, EngineFacts
from envrepro.errors import EnvreproError
from envrepro.lock import host_build_secrets, parse_pip_config_list
from envrepro.probe.redact import redact_text
from envrepro.resolve import resolve

Status = Literal["ok", "warn", "fail", "skip"]
SYMBOLS: Mapping[Status, str] = {"ok": "✔", "warn": "!", "fail": "✘", "skip": "-"}

DEFAULT_INDEX = "https://pypi.org/simple"
INDEX_TIMEOUT_S = 5.0
# A CPU image is ~1.8 GB, and the builder stage holds a second copy of the venv while the final stage copies
# it: below 4 GB a CPU build fails; a GPU image (~5.3 GB, twice during the build) needs more than 10 GB.
MIN_FREE_BYTES = 4 * 10**9
COMFORTABLE_FREE_BYTES = 12 * 10**9
GOOD_DRIVERS = frozenset({"overlay2", "overlay", "overlayfs", "fuse-overlayfs", "btrfs", "zfs"})
# engine architectures that run the images resolve builds (linux/amd64, linux/arm64) natively
IMAGE_ARCHES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    action: str = ""  # what to do about a warning or a failure


@dataclass(frozen=True)
class Diagnosis:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """A build can succeed: no check failed (warnings allowed)."""
        return all(check.status != "fail" for check in self.checks)


@dataclass(frozen=True)
class DoctorRequest:
    snapshot_path: Path | None = None  # the snapshot whose base image to check, if it exists
    base_image: str | None = None  # --base-image: checked instead of the snapshot's resolved base
    env: Mapping[str, str] | None = None  # the environment pip reads (default: os.environ)


@dataclass(frozen=True)
class IndexAnswer:
    status_code: int | None  # None: no HTTP answer
    error: str = ""
    seconds: float = 0.0


ProbeIndex = Callable[[str, "str | bool"], IndexAnswer]


def diagnose(
    request: DoctorRequest,
    engine_factory: Callable[[], ContainerEngine],
    probe_index: ProbeIndex | None = None,
) -> Diagnosis:
    """Run every check; the engine-dependent ones are skipped when no engine answers."""
    env = os.environ if request.env is None else request.env
    engine_check, engine, facts = check_engine(engine_factory)
    index = check_index(env, probe_index or get_index_page)
    if engine is None or facts is None:
        skipped = [
            Check(name, "skip", "no engine to ask") for name in ("storage", "disk", "base image", "host")
        ]
        return Diagnosis((engine_check, *skipped[:2], index, *skipped[2:]))
    base = check_base_image(engine, request)
    return Diagnosis((engine_check, check_storage(facts), check_disk(facts), index, base, check_host(facts)))


# --- the engine -------------------------------------------------------------------------------------------


def check_engine(
    factory: Callable[[], ContainerEngine],
) -> tuple[Check, ContainerEngine | None, EngineFacts | None]:
    try:
        engine = factory()
        facts = engine.engine_facts()
    except EnvreproError as exc:
        return Check("engine", "fail", exc.message, exc.hint or ""), None, None
    detail = f"{facts.product} {facts.version} (API {facts.api_version}) at {facts.host}"
    return Check("engine", "ok", detail), engine, facts


def check_storage(facts: EngineFacts) -> Check:
    driver = facts.storage_driver
    if driver in GOOD_DRIVERS:
        return Check("storage", "ok", f"storage driver {driver}")
    action = "configure the engine with the overlay2 storage driver (dockerd --storage-driver=overlay2)"
    if driver == "vfs":
        return Check(
            "storage", "warn", "storage driver vfs copies every layer in full: slow, many GB", action
        )
    return Check("storage", "warn", f"storage driver {driver} is not one envrepro is tested with", action)


def check_disk(facts: EngineFacts) -> Check:
    """Free space where the engine keeps images, when that place is on this host (a local socket)."""
    root = Path(facts.root_dir) if facts.root_dir and _is_local(facts) else None
    try:
        free = shutil.disk_usage(root).free if root is not None else None
    except OSError:  # not a path on this host after all, or not ours to look at
        free = None
    if root is None or free is None:
        where = facts.root_dir or "its data root"
        unknown = f"free disk unknown: the engine keeps images in {where} on its own machine"
        return Check("disk", "warn", unknown, "check free space there: a CPU image needs about 4 GB to build")
    detail = f"{free / 1e9:.1f} GB free in {root}"
    if free < MIN_FREE_BYTES:
        action = "free space (`envrepro clean`, `docker system df`): a CPU image needs about 4 GB to build"
        return Check("disk", "fail", detail, action)
    if free < COMFORTABLE_FREE_BYTES:
        return Check("disk", "warn", detail, "enough for a CPU image; a GPU image needs about 12 GB to build")
    return Check("disk", "ok", detail)


# --- the package index ------------------------------------------------------------------------------------


def check_index(env: Mapping[str, str], probe: ProbeIndex) -> Check:
    """The index `envrepro build` will lock against, reached with the host's pip CA bundle."""
    try:
        secrets = host_build_secrets(env)
        cert = pip_cert_path(env)
    except EnvreproError as exc:
        return Check("index", "fail", exc.message, exc.hint or "")
    url = secrets.index_url or DEFAULT_INDEX
    shown = redact_text(url)
    answer = probe(url.rstrip("/") + "/pip/", cert or True)
    ca = f"CA bundle {cert}" if cert else "pip's default CA bundle"
    if answer.status_code is not None and answer.status_code < 400:
        return Check(
            "index", "ok", f"{shown} answered HTTP {answer.status_code} in {answer.seconds:.1f} s ({ca})"
        )
    return Check("index", "fail", f"{shown} not reachable ({ca}): {_why(answer)}", _index_action(answer))


def _why(answer: IndexAnswer) -> str:
    return f"HTTP {answer.status_code}" if answer.status_code is not None else redact_text(answer.error)


def _index_action(answer: IndexAnswer) -> str:
    if answer.status_code in (401, 403):
        return "check the index credentials in your pip configuration (index-url) or keyring"
    if "certificate" in answer.error.lower() or "ssl" in answer.error.lower():
        return (
            "point PIP_CERT (or pip's `cert` setting, or --pip-cert) at the CA bundle of your proxy or index"
        )
    return "check the network or proxy (HTTPS_PROXY), and PIP_INDEX_URL / pip's index-url (or --index-url)"


def pip_cert_path(env: Mapping[str, str]) -> str | None:
    """The CA bundle pip uses: PIP_CERT, else the `cert` of pip's configuration files."""
    done = proc.run([sys.executable, "-m", "pip", "config", "list"], env=env, timeout=60, check=False)
    settings = parse_pip_config_list(done.stdout) if done.returncode == 0 else {}
    return settings.get("cert") or None


def get_index_page(url: str, verify: str | bool) -> IndexAnswer:
    """GET the index's page of `pip` (headers only), with a short timeout; credentials in the URL are sent
    as pip sends them (basic auth) and never shown."""
    started = time.monotonic()
    try:
        with requests.get(url, timeout=INDEX_TIMEOUT_S, verify=verify, stream=True) as response:
            return IndexAnswer(response.status_code, seconds=time.monotonic() - started)
    except requests.RequestException as exc:
        return IndexAnswer(None, error=f"{type(exc).__name__}: {_last_words(exc)}")


def _last_words(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1][-200:] if text else type(exc).__name__


# --- the base image and the host --------------------------------------------------------------------------


def check_base_image(engine: ContainerEngine, request: DoctorRequest) -> Check:
    try:
        base, source = _base_image(request)
    except EnvreproError as exc:
        return Check("base image", "fail", exc.message, exc.hint or "")
    if base is None:
        return Check("base image", "skip", "no snapshot here: pass --snapshot FILE or --base-image IMAGE")
    if engine.image_exists(base):
        return Check("base image", "ok", f"{base} ({source}) is present on the engine")
    return Check(
        "base image",
        "warn",
        f"{base} ({source}) is not on the engine; the build pulls it (whether a registry serves it is not "
        "checked)",
        f"`docker pull {base}` now, or pass --base-image with an image the engine has",
    )


def _base_image(request: DoctorRequest) -> tuple[str | None, str]:
    if request.base_image:
        return request.base_image, "--base-image"
    path = request.snapshot_path
    if path is None or not path.exists():
        return None, ""
    return resolve(snapshot.load(path)).base_image, f"resolved for {path}"


def _is_local(facts: EngineFacts) -> bool:
    """A socket on this host: its data root is a path here (not so for tcp://, even on 127.0.0.1)."""
    return facts.host.startswith(("unix://", "npipe://"))


def check_host(facts: EngineFacts) -> Check:
    host = f"host {platform.system()} {platform.machine()}"
    where = "local socket" if _is_local(facts) else f"remote, {facts.host}"
    detail = f"{host}; engine {facts.os} {facts.arch} ({facts.operating_system}, {where})"
    if facts.os != "linux":
        return Check(
            "host", "fail", detail, "switch the engine to Linux containers: envrepro builds Linux images"
        )
    if facts.arch not in IMAGE_ARCHES:
        action = "use an x86_64 or arm64 engine: envrepro builds linux/amd64 and linux/arm64 images"
        return Check("host", "fail", detail, action)
    return Check("host", "ok", detail)


# --- rendering --------------------------------------------------------------------------------------------


def render_lines(diagnosis: Diagnosis) -> list[str]:
    """`✔ engine: Docker 27.5.1 ...`, and an indented `→ what to do` under a warning or a failure."""
    lines: list[str] = []
    for check in diagnosis.checks:
        lines.append(f"{SYMBOLS[check.status]} {check.name}: {check.detail}")
        if check.action:
            lines.append(f"  → {check.action}")
    verdict = "a build can succeed here" if diagnosis.ok else "a build cannot succeed here until ✘ is fixed"
    return [*lines, verdict]


def render_json(diagnosis: Diagnosis) -> str:
    return json.dumps({"ok": diagnosis.ok, "checks": [asdict(check) for check in diagnosis.checks]}, indent=2)
