"""The host's pip configuration: read to forward the index to the image's builder stage and to pip-compile.

Credentials reach pip through files (a private pip.conf), never a command line, and are never logged.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from envrepro import proc
from envrepro.errors import InputFileError
from envrepro.probe.redact import redact_text
from envrepro.target import BuildSecrets

log = logging.getLogger(__name__)


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


def index_config(index: BuildSecrets, work: Path) -> Path:
    """A private pip.conf with the image's index: credentials reach pip through a file, never argv
    (a command line is readable by every local user in /proc)."""
    cert = None
    if index.ca_bundle is not None:
        cert = work / "ca.pem"
        cert.write_bytes(index.ca_bundle)
    config = work / "pip.conf"
    config.touch(mode=0o600)
    config.write_text(pip_conf_text(index, str(cert) if cert else None), encoding="utf-8")
    return config


def pip_conf_text(index: BuildSecrets, cert_path: str | None) -> str:
    """pip.conf for `index`: index-url, extra-index-url, trusted-host, and `cert` at `cert_path`."""
    lines = ["[global]"]
    if index.index_url:
        lines.append(f"index-url = {index.index_url}")
    if index.extra_index_urls:
        lines.append("extra-index-url = " + " ".join(index.extra_index_urls))
    if index.trusted_hosts:
        lines.append("trusted-host = " + " ".join(index.trusted_hosts))
    if cert_path is not None:
        lines.append(f"cert = {cert_path}")
    return "\n".join(lines) + "\n"
