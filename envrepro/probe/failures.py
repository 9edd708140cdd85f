"""How the probe says that a model could not be loaded or run: a kind the host maps to a hint, and a detail.

Standard library only; imported by the other probe modules (by bare name when the probe runs as a script).
"""

from __future__ import annotations

import zipfile

DETAIL_LIMIT = 300
CORRUPT_MARKERS = (
    "truncated",
    "file signature not found",
    "unable to open file",
    "unable to synchronously open",
    "not a zip file",
    "error parsing message",
    "bad magic number",
    "decodeerror",
    "corrupt",
)
UNSAFE_MARKERS = ("safe_mode", "unsafe", "lambda` layer")
CUSTOM_MARKERS = (
    "unknown layer",
    "could not locate",
    "custom_objects",
    "could not deserialize",
    "could not be deserialized",
    "unknown object",
    "register_keras_serializable",
)
UNSAFE_HINT = "pass --unsafe-deserialization only if you trust the file"


class ModelProbeError(Exception):
    """A model could not be loaded or run; `kind` says why in one word the host maps to a hint."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def trim(text: str, limit: int = DETAIL_LIMIT) -> str:
    """One line of at most `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException) -> str:
    """`Type: message`, without the configuration dump Keras appends to some messages."""
    text = str(exc).split("\n\n")[0].split("config={")[0].strip()
    return trim("%s: %s" % (type(exc).__name__, text))


def classify_load_error(exc: BaseException) -> ModelProbeError:
    """Map a loader exception to a kind: corrupt, unsafe, custom_objects or load_failed."""
    lowered = ("%s: %s" % (type(exc).__name__, exc)).lower()
    short = describe(exc)
    if isinstance(exc, zipfile.BadZipFile) or any(marker in lowered for marker in CORRUPT_MARKERS):
        return ModelProbeError("corrupt", "cannot be read, it is truncated or corrupt (%s)" % short)
    if any(marker in lowered for marker in UNSAFE_MARKERS):
        return ModelProbeError("unsafe", "needs unsafe deserialization (%s); %s" % (short, UNSAFE_HINT))
    if any(marker in lowered for marker in CUSTOM_MARKERS):
        return ModelProbeError("custom_objects", "needs custom objects that are not available (%s)" % short)
    return ModelProbeError("load_failed", "failed to load (%s)" % short)
