"""How envrepro finds and reaches a container engine.

Where: `DOCKER_HOST` if set; else the Docker CLI's current context (`DOCKER_CONTEXT`, else `currentContext`
in `$DOCKER_CONFIG/config.json`, default `~/.docker`); else the local socket. That is the Docker CLI's own
order. A context's endpoint is read from `contexts/meta/<sha256 of its name>/meta.json` and its TLS material
from `contexts/tls/<sha256 of its name>/docker/{ca,cert,key}.pem`, as the CLI stores them.

How: the Docker SDK's client (this module and engine.py are the only ones that import `docker`), with
- TLS (`DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`, or the context's material) verified against the engine's own
  CA only: the client ignores `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` and proxy variables, which requests
  would otherwise let override it (docker/docker-py#2433, #2598);
- `ssh://user@host[:port]` through paramiko (keys from ssh-agent or `IdentityFile` in `~/.ssh/config`,
  hosts checked against `~/.ssh/known_hosts`; an unknown host is refused);
- `tcp://user:password@host:port`: the credentials go as HTTP basic auth (use it with TLS) and never into a
  message or a log;
- a timeout: reaching the engine and its first answer must take at most `ENVREPRO_ENGINE_TIMEOUT` seconds
  (default 10); later calls that do not stream give up after `CALL_TIMEOUT_S` without an answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from envrepro import ssh_deferred  # noqa: F401 - before the SDK: paramiko loads only for ssh://

# isort: split
import docker  # the SDK's client is built here; engine.py uses it
import requests
from docker.constants import DEFAULT_DOCKER_API_VERSION, MINIMUM_DOCKER_API_VERSION
from docker.errors import DockerException
from docker.tls import TLSConfig

from envrepro.errors import EngineConfigError, EngineTimeoutError, EngineUnavailableError
from envrepro.probe.redact import redact_text

log = logging.getLogger(__name__)

TIMEOUT_VARIABLE = "ENVREPRO_ENGINE_TIMEOUT"
DEFAULT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 600.0  # any later call that does not stream (inspect, create, remove...): silence limit
DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_CONTEXT = "default"  # the CLI's name for "DOCKER_HOST or the local socket"
_TLS_FILES = ("ca.pem", "cert.pem", "key.pem")
SSH_LIMITS = "the ssh connection's own limits: 15 s for the server's banner, 30 s for authentication"


@dataclass(frozen=True)
class TlsMaterial:
    """Where the engine's CA and the client's certificate are; `verify=False` skips the server check."""

    ca: Path | None
    cert: Path | None
    key: Path | None
    verify: bool


@dataclass(frozen=True)
class Endpoint:
    """An engine's address and how to reach it. `url` may carry credentials: show `where`, never `url`."""

    url: str = field(repr=False)
    origin: str  # "DOCKER_HOST", "docker context NAME" or "default socket"
    tls: TlsMaterial | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def shown(self) -> str:
        return redact_text(self.url)

    @property
    def where(self) -> str:
        """The endpoint as messages name it, credentials replaced."""
        if self.origin.startswith("docker context"):
            return f"{self.shown} ({self.origin})"
        return f"DOCKER_HOST={self.shown}"


# ---------------------------------------------------------------------------------------------------------
# Where the engine is


def resolve(env: Mapping[str, str]) -> Endpoint:
    """The endpoint the Docker CLI would use with this environment (no flags)."""
    timeout_s = engine_timeout(env)
    host = env.get("DOCKER_HOST", "")
    if host:
        return Endpoint(host, "DOCKER_HOST", _env_tls(env), timeout_s)
    config_dir = _config_dir(env)
    source = "DOCKER_CONTEXT" if env.get("DOCKER_CONTEXT") else "currentContext"
    name = env.get("DOCKER_CONTEXT") or _current_context(config_dir)
    if name and name != DEFAULT_CONTEXT:
        return _context_endpoint(config_dir, name, source, timeout_s)
    return Endpoint(DEFAULT_HOST, "default socket", _env_tls(env), timeout_s)


def engine_timeout(env: Mapping[str, str]) -> float:
    """Seconds allowed to reach the engine and get its first answer ($ENVREPRO_ENGINE_TIMEOUT, default 10)."""
    raw = env.get(TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise EngineConfigError(TIMEOUT_VARIABLE, repr(raw), "not a number of seconds greater than 0")
    return value


def _env_tls(env: Mapping[str, str]) -> TlsMaterial | None:
    """TLS from DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, with the Docker CLI's meaning of each."""
    cert_path = env.get("DOCKER_CERT_PATH", "")
    verify = bool(env.get("DOCKER_TLS_VERIFY", ""))  # set and non-empty: verify the server
    if not cert_path and not verify:
        return None
    folder = Path(cert_path) if cert_path else Path(env.get("HOME", str(Path.home()))) / ".docker"
    ca, cert, key = (folder / name for name in _TLS_FILES)
    return TlsMaterial(ca if ca.is_file() else None, cert, key, verify)


def _config_dir(env: Mapping[str, str]) -> Path:
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"])
    return Path(env.get("HOME", str(Path.home()))) / ".docker"


def _current_context(config_dir: Path) -> str:
    document = _read_json(config_dir / "config.json", "DOCKER_CONFIG", missing_ok=True)
    value = document.get("currentContext", "")
    return value if isinstance(value, str) else ""


def _context_endpoint(config_dir: Path, name: str, source: str, timeout_s: float) -> Endpoint:
    """The docker endpoint of context `name` (named by `source`), from the CLI's context store."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta_file = config_dir / "contexts" / "meta" / digest / "meta.json"
    if not meta_file.is_file():
        raise EngineConfigError(
            source,
            repr(name),
            f"no such context in {config_dir / 'contexts'}",
            hint="`docker context ls` lists the contexts; `docker context use default` goes back to "
            "DOCKER_HOST or the local socket",
        )
    meta = _read_json(meta_file, source)
    endpoint = (meta.get("Endpoints") or {}).get("docker") or {}
    host = endpoint.get("Host") if isinstance(endpoint, dict) else None
    if not isinstance(host, str) or not host:
        raise EngineConfigError(source, repr(name), f"{meta_file} names no docker endpoint Host")
    tls_dir = config_dir / "contexts" / "tls" / digest / "docker"
    return Endpoint(host, f"docker context {name}", _context_tls(host, tls_dir, endpoint), timeout_s)


def _context_tls(host: str, tls_dir: Path, endpoint: Mapping[str, Any]) -> TlsMaterial | None:
    """The CLI uses TLS for a context's tcp endpoint when it has TLS files or skips verification."""
    skip = bool(endpoint.get("SkipTLSVerify"))
    ca, cert, key = (tls_dir / name for name in _TLS_FILES)
    if not host.startswith("tcp://") or not (skip or ca.is_file() or cert.is_file()):
        return None
    has_pair = cert.is_file() and key.is_file()
    return TlsMaterial(
        ca if ca.is_file() else None, cert if has_pair else None, key if has_pair else None, not skip
    )


def _read_json(path: Path, setting: str, *, missing_ok: bool = False) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise EngineConfigError(setting, str(path), "the file does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineConfigError(setting, str(path), f"not a readable JSON file ({exc})") from exc
    if not isinstance(document, dict):
        raise EngineConfigError(setting, str(path), "not a JSON object")
    return document


# ---------------------------------------------------------------------------------------------------------
# Reaching it


def connect(env: Mapping[str, str]) -> tuple[Endpoint, docker.DockerClient]:
    """Resolve the endpoint, reach the engine within its timeout, and return a client pinned to it."""
    endpoint = resolve(env)
    log.debug("engine: %s", endpoint.where)
    _quiet_paramiko()
    try:
        version = _api_version(endpoint)
        client = _client(endpoint, version)
    except (DockerException, requests.RequestException, OSError, _ssh_error()) as exc:
        raise _unavailable(endpoint, exc) from None  # the cause's text may hold the URL's credentials
    client.api.timeout = max(CALL_TIMEOUT_S, endpoint.timeout_s)  # type: ignore[assignment]
    return endpoint, client


def _api_version(endpoint: Endpoint) -> str:
    """The engine's API version, asked with a client that cannot be redirected to another CA."""
    probe = _client(endpoint, MINIMUM_DOCKER_API_VERSION)
    try:
        answer: dict[str, Any] = probe.api.version(api_version=False)
    finally:
        probe.close()
    return str(answer.get("ApiVersion") or DEFAULT_DOCKER_API_VERSION)


def _client(endpoint: Endpoint, version: str) -> docker.DockerClient:
    url, auth = _split_credentials(endpoint)
    tls = _tls_config(endpoint) if endpoint.tls else False
    client = docker.DockerClient(
        base_url=url,
        version=version,
        tls=tls,
        timeout=endpoint.timeout_s,  # type: ignore[arg-type]
    )  # the stubs say int; requests takes seconds as a float
    client.api.trust_env = False  # REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, *_PROXY, .netrc: not for the engine
    if auth:
        client.api.auth = auth
    return client


def _split_credentials(endpoint: Endpoint) -> tuple[str, tuple[str, str] | None]:
    """`tcp://user:password@host:port` -> the URL without them and (user, password) for basic auth."""
    parts = urlsplit(endpoint.url)
    if parts.password is None:
        return endpoint.url, None
    if parts.scheme not in ("tcp", "http", "https"):
        raise EngineConfigError(
            "DOCKER_HOST", endpoint.shown, f"a password in a {parts.scheme}:// address is not supported",
            hint="for ssh://, use a key (ssh-agent, or IdentityFile in ~/.ssh/config)",
        )  # fmt: skip
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc)), (parts.username or "", parts.password)


def _tls_config(endpoint: Endpoint) -> TLSConfig:
    tls = endpoint.tls
    assert tls is not None
    pair = (str(tls.cert), str(tls.key)) if tls.cert and tls.key else None
    try:
        return TLSConfig(client_cert=pair, ca_cert=str(tls.ca) if tls.ca else None, verify=tls.verify)
    except DockerException as exc:
        folder = (tls.cert or tls.ca or Path("~/.docker")).parent
        raise EngineConfigError(
            "DOCKER_CERT_PATH", str(folder), f"{exc} (expected ca.pem, cert.pem and key.pem there)",
            hint=f"the TLS material of {endpoint.where} is incomplete",
        ) from None  # fmt: skip


def _quiet_paramiko() -> None:
    """paramiko's transport thread logs its failures with a traceback; the error we raise says it once."""
    paramiko_log = logging.getLogger("paramiko")
    paramiko_log.propagate = False
    if not paramiko_log.handlers:
        paramiko_log.addHandler(logging.NullHandler())


def _ssh_error() -> type[Exception]:
    """paramiko's error root (ssh:// endpoints), without importing paramiko where it is not installed."""
    try:
        from paramiko import SSHException  # noqa: PLC0415 - only ssh:// needs it
    except ImportError:  # pragma: no cover - paramiko is a dependency
        return OSError
    return SSHException  # type: ignore[no-any-return]


def _unavailable(endpoint: Endpoint, exc: BaseException) -> EngineUnavailableError:
    if _timed_out(exc) and endpoint.url.startswith("ssh://"):  # paramiko's limits, not ours, applied
        return EngineUnavailableError(endpoint.where, f"{_reason(endpoint, exc)} ({SSH_LIMITS})")
    if _timed_out(exc):
        return EngineTimeoutError(endpoint.where, endpoint.timeout_s, TIMEOUT_VARIABLE)
    return EngineUnavailableError(endpoint.where, _reason(endpoint, exc))


def _timed_out(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, (requests.exceptions.Timeout, TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _reason(endpoint: Endpoint, exc: BaseException) -> str:
    """The error's last line, with the endpoint's credentials (in any spelling) replaced."""
    text = str(getattr(exc, "explanation", None) or exc).strip()
    text = text.splitlines()[-1] if text else type(exc).__name__
    parts = urlsplit(endpoint.url)
    text = text.replace(endpoint.url, endpoint.shown)
    for secret in (parts.netloc.rpartition("@")[0], parts.password or ""):
        if secret:
            text = text.replace(secret, "***")
    return redact_text(text)
