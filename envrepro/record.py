"""The probe's raw record -> the typed Snapshot: reproducibility advice, model and preprocessing records.

Pure functions: the probe (run in the target interpreter) returns plain JSON; this module is where it
becomes the typed, validated record the rest of envrepro reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import envrepro
from envrepro import grammar
from envrepro.snapshot import Distribution, ModelRecord, Origin, PreprocessRecord, Snapshot

_MODEL_FIELDS = (
    "format",
    "file_sha256",
    "saved_keras_version",
    "architecture_sha256",
    "weights_sha256",
    "weights",
    "inputs",
    "outputs",
)
_PREPROCESS_FIELDS = ("function", "source_sha256", "samples", "outputs", "arrays_sha256")

_ORIGIN_ADVICE = {
    "editable": "installed in editable mode from {url}: build a wheel of it (pip wheel) and publish it to "
    "your index, then snapshot again",
    "local": "installed from a local path ({url}): publish it to an index, or pass "
    "--exclude {name} to build without it",
    "vcs": "installed from a VCS URL ({url}, {detail}): publish a release to an index, or pass "
    "--exclude {name} to build without it",
    "url": "installed from a direct URL ({url}): publish it to an index, or pass --exclude {name}",
    "unknown": "its installation record (direct_url.json) is unreadable: reinstall it from an index",
}


def to_snapshot(
    record: Mapping[str, Any],
    refs: Mapping[str, str],
    now: dt.datetime | None = None,
    preprocess_ref: str = "",
) -> Snapshot:
    """Build the typed Snapshot from a raw probe record; `refs` maps model path -> reference file name,
    `preprocess_ref` names the preprocessing reference file."""
    env = dict(record["environment"])
    env["distributions"] = [_with_reproducibility(raw) for raw in env["distributions"]]
    created = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0).isoformat()
    models = [_model_record(raw, refs.get(raw["path"])) for raw in record.get("models", [])]
    pre = record.get("preprocessing")
    return Snapshot.model_validate(
        {
            "envrepro_version": envrepro.__version__,
            "created_at": created,
            "environment": env,
            "models": models,
            "preprocessing": None if pre is None else preprocess_record(pre, preprocess_ref),
        }
    )


def preprocess_record(raw: Mapping[str, Any], ref_file: str) -> PreprocessRecord:
    """The typed preprocessing record from the probe's; `ref_file` names its reference file."""
    if raw.get("error"):
        return PreprocessRecord.model_validate({"function": raw["function"], "error": _failure(raw)})
    fields = {key: raw[key] for key in _PREPROCESS_FIELDS}
    return PreprocessRecord.model_validate({**fields, "file": ref_file, "raw_from": raw.get("raw_from", "")})


def _failure(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {key: raw["error"][key] for key in ("kind", "detail")}


def _with_reproducibility(raw: Mapping[str, Any]) -> Distribution:
    origin = Origin.model_validate(raw["origin"])
    reason = ""
    if origin.kind != "index":
        reason = _ORIGIN_ADVICE[origin.kind].format(url=origin.url, detail=origin.detail, name=raw["name"])
    elif not _is_pep440(raw.get("version")):
        reason = NOT_PEP440.format(name=raw["name"])
    return Distribution.model_validate({**raw, "reproducible": not reason, "reason": reason})


NOT_PEP440 = (
    "its version is not a PEP 440 version, so no package index serves it (an operating-system package, "
    "such as Debian's python3-{name}): leave it out with --exclude {name}, or install it from an index"
)


def _is_pep440(version: object) -> bool:
    try:
        grammar.pep440_version(str(version))
    except ValueError:
        return False
    return True


def _model_record(raw: Mapping[str, Any], ref_file: str | None) -> ModelRecord:
    if raw.get("error"):
        return ModelRecord.model_validate({"path": raw["path"], "error": _failure(raw)})
    fields = {key: raw[key] for key in _MODEL_FIELDS}
    fields["input_preprocessing"] = raw.get("input_preprocessing")
    reference = None
    if ref_file is not None:
        reference = {
            "file": ref_file,
            "arrays_sha256": raw["arrays_sha256"],
            "samples": raw["samples"],
            "seed": raw["seed"],
            "inputs_from": raw.get("inputs_from", "generated"),
        }
    return ModelRecord.model_validate({"path": raw["path"], **fields, "reference": reference})
