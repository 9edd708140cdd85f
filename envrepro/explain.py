"""Why parity failed: pure functions from (training record, image record, comparison) to ranked causes.

No I/O and no engine: what the snapshot recorded, what the probe recorded in the image, and how the
arrays compared go in; fingerprint checks, the failing stage, likely causes (most likely first), warnings
and the one-line summary come out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from envrepro.data import difference_kinds
from envrepro.diff import Difference
from envrepro.parity_model import Cause, EnvironmentDifference, FingerprintCheck, OutputResult, Stage
from envrepro.snapshot import ModelRecord


def fingerprints(record: ModelRecord, candidate: ModelRecord) -> tuple[FingerprintCheck, ...]:
    pairs = (
        ("file", record.file_sha256, candidate.file_sha256),
        ("architecture", record.architecture_sha256, candidate.architecture_sha256),
        ("weights", record.weights_sha256, candidate.weights_sha256),
    )
    return tuple(
        FingerprintCheck(what=what, reference=a, candidate=b, same=a == b)  # type: ignore[arg-type]
        for what, a, b in pairs
    )


def model_mismatch(checks: Sequence[FingerprintCheck]) -> bool:
    """Architecture or weights differ (the file's own digest may differ for the same model)."""
    return not all(check.same for check in checks if check.what != "file")


def stage(pre_fail: bool, model_fail: bool) -> Stage:
    if pre_fail and model_fail:
        return "both"
    if pre_fail:
        return "preprocessing"
    return "model" if model_fail else "none"


def likely_causes(
    checks: Sequence[FingerprintCheck], differences: Sequence[Difference], comparisons: Sequence[OutputResult]
) -> tuple[Cause, ...]:
    """Most likely first: a different model, then environment differences that move numbers."""
    by_what = {check.what: check for check in checks}
    causes = [
        Cause(
            cause=f"the model's {what} differs from the recorded model",
            evidence=f"{what} sha256 {_short(c)}",
        )
        for what, c in (("architecture", by_what["architecture"]), ("weights", by_what["weights"]))
        if not c.same
    ]
    moved = any(c.max_abs_error != 0.0 or c.mismatched_elements for c in comparisons)
    if moved:
        causes += [
            Cause(cause=_cause_text(d), evidence=f"{d.field}: {d.before} → {d.after}. {d.why}")
            for d in differences
            if d.group in ("breaks", "may")
        ]
    return tuple(causes)


def _short(check: FingerprintCheck) -> str:
    return f"{check.reference[:12]} recorded, {check.candidate[:12]} now"


def _cause_text(d: Difference) -> str:
    return difference_kinds()[d.kind].get("cause") or f"{d.field} differs"


def preprocess_cause(
    spec: str, comparisons: Sequence[OutputResult], recorded_sha: str, now_sha: str
) -> Cause:
    """The preprocessing gives other arrays in the image: did its source change, or what it reads?"""
    worst = next(c for c in comparisons if not c.passed)
    if recorded_sha and now_sha and recorded_sha != now_sha:
        source = f"its source changed ({recorded_sha[:12]} recorded, {now_sha[:12]} now)"
    else:
        source = (
            "its source is unchanged, so what it reads (data files such as normalisation statistics) "
            "or the libraries it calls differ"
        )
    return Cause(
        cause=f"the preprocessing function {spec} gives other arrays in the image",
        evidence=f"{worst.name}: {worst.reason} (max abs error {worst.max_abs_error:.3g}); {source}",
    )


def python_patch_warnings(differences: Sequence[Difference]) -> tuple[str, ...]:
    return tuple(
        f"{d.field}: {d.before} in training, {d.after} in the image ({d.why})"
        for d in differences
        if d.kind == "python_patch"
    )


def warnings(
    differences: Sequence[Difference],
    candidate: ModelRecord,
    reference: Mapping[str, np.ndarray[Any, Any]],
    preprocessing_recorded: bool,
    preprocessing_failed: bool,
) -> tuple[str, ...]:
    """A Python patch-level difference; then the model's own checks, with what became of preprocessing."""
    note = preprocessing_note(preprocessing_recorded, preprocessing_failed)
    return python_patch_warnings(differences) + model_checks(candidate, reference, note)


def preprocessing_note(recorded: bool, failed: bool) -> str:
    if not recorded:
        return "; record it with `envrepro snapshot --preprocess MODULE:FUNCTION --raw FILE.npz`"
    if failed:
        return "; the recorded preprocessing differs in the image (see above)"
    return "; envrepro compared the recorded preprocessing, and it matches"


def model_checks(
    candidate: ModelRecord, reference: Mapping[str, np.ndarray[Any, Any]], preprocessing: str = ""
) -> tuple[str, ...]:
    """Warnings about the model itself: no preprocessing inside it; inputs unlike the reference inputs."""
    found: list[str] = []
    if candidate.input_preprocessing == ():
        found.append(
            "the model has no preprocessing layer at its input (Rescaling, Normalization, Resizing, ...): "
            "the serving code must preprocess exactly as training did, the usual source of training/serving "
            "skew" + preprocessing
        )
    for index, spec in enumerate(candidate.inputs):
        array = reference.get(f"input.{index}")
        if array is None:
            continue
        if str(array.dtype) != spec.dtype:
            found.append(
                f"input {spec.name}: the model takes {spec.dtype}, the reference inputs are {array.dtype} "
                "(Keras converts them silently, so the serving code may feed another dtype than training)"
            )
        if not _shape_fits(spec.shape, array.shape):
            found.append(
                f"input {spec.name}: the model takes shape {_shape_text(spec.shape)}, the reference inputs "
                f"have {_shape_text(array.shape)}"
            )
    return tuple(found)


def _shape_fits(spec: Sequence[int | None], shape: Sequence[int]) -> bool:
    if len(spec) != len(shape):
        return False
    return all(want is None or want == have for want, have in zip(spec[1:], shape[1:], strict=True))


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def summary(
    where: Stage,
    comparisons: Sequence[OutputResult],
    pre_comparisons: Sequence[OutputResult],
    mismatch: bool,
    causes: Sequence[Cause],
) -> str:
    worst_text = _worst(comparisons)
    if where == "none":
        checked = f"; preprocessing matches ({_worst(pre_comparisons)})" if pre_comparisons else ""
        return f"PASS: {len(comparisons)} output(s) within tolerance ({worst_text}){checked}"
    pre_text = ""
    if where in ("preprocessing", "both"):
        failed = [c.name for c in pre_comparisons if not c.passed]
        pre_text = f"preprocessing differs: {', '.join(failed)} outside tolerance ({_worst(pre_comparisons)})"
    if where == "preprocessing":
        return f"FAIL: {pre_text}; the model itself matches on the recorded inputs ({worst_text})"
    model_text = _model_text(comparisons, mismatch, causes, worst_text)
    if where == "both":
        return f"FAIL: {pre_text}; and model differs: {model_text}"
    return f"FAIL: {model_text}"


def _model_text(
    comparisons: Sequence[OutputResult], mismatch: bool, causes: Sequence[Cause], worst_text: str
) -> str:
    model_causes = [c.cause for c in causes if not c.cause.startswith("the preprocessing")]
    if mismatch:
        return f"model mismatch, {model_causes[0]} ({worst_text})"
    failed = [c.name for c in comparisons if not c.passed]
    why = f"; likely cause: {model_causes[0]}" if model_causes else ""
    return f"output(s) {', '.join(failed)} outside tolerance ({worst_text}){why}"


def _worst(comparisons: Sequence[OutputResult]) -> str:
    worst = max((c.max_abs_error for c in comparisons), default=0.0)
    if math.isnan(worst):
        return "max abs error nan"
    return "exactly equal" if worst == 0 else f"max abs error {worst:.3g}"


def environment_difference(d: Difference) -> EnvironmentDifference:
    return EnvironmentDifference(
        kind=d.kind,
        group=d.group,
        field=d.field,
        training=d.before,
        image=d.after,
        why=d.why,
        source=d.source,
    )
