"""Secret redaction, standard library only (it runs in the probe and on the host).

Anything that looks like a credential is replaced by REDACTED before it is written anywhere: URL
userinfo (https://user:token@host), credential-like query parameters, and well-known token formats.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_SECRET_QUERY = re.compile(
    r"(?i)(?P<key>[?&;](?:access_token|token|auth|api[_-]?key|apikey|key|password|passwd|secret|"
    r"sig|signature|x-amz-signature|x-amz-credential|credential)=)(?P<value>[^&#\s]+)"
)
# Well-known token shapes (GitHub, GitLab, Hugging Face, AWS, Slack, OpenAI-style, npm, PyPI, JWT).
_TOKENS = re.compile(
    r"\b(?:"
    r"gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|hf_[A-Za-z0-9]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|sk-[A-Za-z0-9_\-]{20,}"
    r"|npm_[A-Za-z0-9]{20,}"
    r"|pypi-[A-Za-z0-9_\-]{20,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+"
    r")"
)
_SECRET_NAME = re.compile(r"(?i)(token|secret|passw|credential|api[_-]?key|private[_-]?key|auth)")


def redact_text(text: str) -> str:
    """Return `text` with every credential-looking part replaced."""

    def _userinfo(match: re.Match[str]) -> str:
        return match.group("scheme") + REDACTED + "@"

    text = _URL_USERINFO.sub(_userinfo, text)
    text = _SECRET_QUERY.sub(lambda m: m.group("key") + REDACTED, text)
    return _TOKENS.sub(REDACTED, text)


def looks_secret_name(name: str) -> bool:
    """True for an environment-variable or field name that suggests a credential."""
    return bool(_SECRET_NAME.search(name))


def redact(value: Any) -> Any:
    """Redact every string inside a JSON-like structure (dicts, lists, strings), returning a copy."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value
