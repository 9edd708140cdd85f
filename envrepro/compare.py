"""Numerical comparison of a model's outputs in two environments. Pure NumPy; no I/O.

Per output: shape and dtype, max/mean absolute error, max relative error (with a floor so zeros do not
explode it), the smallest atol that would pass at the given rtol, ULP distance, NaN/Inf counts, and for
classifier-like outputs argmax and top-k agreement. Pass means: same shape, NaN and Inf in the same
places, and |candidate - reference| <= atol + rtol * |reference| everywhere (numpy.isclose's rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from envrepro.parity_model import OutputResult
from envrepro.tolerance import DEFAULT_TOLERANCES, EXACT, Tolerance, default_tolerance

TOP_K = 5
__all__ = ["DEFAULT_TOLERANCES", "EXACT", "Tolerance", "compare_output", "default_tolerance", "max_ulp"]


@dataclass(frozen=True)
class _Measured:
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    rel_error_floor: float
    min_passing_atol: float
    max_ulp: int
    mismatched_elements: int
    elements: int
    argmax_agreement: float | None = None
    topk_agreement: float | None = None
    top_k: int | None = None


def compare_output(
    name: str,
    reference: npt.NDArray[np.generic],
    candidate: npt.NDArray[np.generic],
    tolerance: Tolerance,
) -> OutputResult:
    """Compare one output tensor; never raises on odd data (NaN, Inf, shape or dtype mismatch)."""
    if reference.shape != candidate.shape:
        size = int(reference.size)
        unmeasured = _Measured(math.inf, math.inf, math.inf, 0.0, math.inf, -1, size, size)
        return _result(
            name,
            reference=reference,
            candidate=candidate,
            tolerance=tolerance,
            measured=unmeasured,
            reason="shape differs",
        )
    if reference.dtype.kind not in "fc" or candidate.dtype.kind not in "fc":
        measured, reason = _compare_exact(reference, candidate)
    else:
        measured, reason = _compare_float(reference, candidate, tolerance)
    return _result(
        name, reference=reference, candidate=candidate, tolerance=tolerance, measured=measured, reason=reason
    )


def _result(
    name: str,
    *,
    reference: npt.NDArray[np.generic],
    candidate: npt.NDArray[np.generic],
    tolerance: Tolerance,
    measured: _Measured,
    reason: str,
) -> OutputResult:
    return OutputResult(
        name=name,
        passed=not reason,
        reason=reason,
        reference_shape=tuple(int(d) for d in reference.shape),
        candidate_shape=tuple(int(d) for d in candidate.shape),
        reference_dtype=str(reference.dtype),
        candidate_dtype=str(candidate.dtype),
        atol=tolerance.atol,
        rtol=tolerance.rtol,
        reference_nan=_count(reference, np.isnan),
        candidate_nan=_count(candidate, np.isnan),
        reference_inf=_count(reference, np.isinf),
        candidate_inf=_count(candidate, np.isinf),
        **{**vars(measured), "max_ulp": None if measured.max_ulp < 0 else measured.max_ulp},
    )


def _count(array: npt.NDArray[np.generic], test: np.ufunc) -> int:
    return int(test(array).sum()) if array.dtype.kind in "fc" else 0


def _compare_exact(
    reference: npt.NDArray[np.generic], candidate: npt.NDArray[np.generic]
) -> tuple[_Measured, str]:
    equal = reference == candidate
    mismatched = int((~equal).sum())
    diff = float(np.abs(reference.astype(np.float64) - candidate.astype(np.float64)).max(initial=0.0))
    measured = _Measured(
        max_abs_error=diff,
        mean_abs_error=float(np.mean(~equal)) if equal.size else 0.0,
        max_rel_error=0.0 if not mismatched else math.inf,
        rel_error_floor=0.0,
        min_passing_atol=diff,
        max_ulp=0 if not mismatched else -1,
        mismatched_elements=mismatched,
        elements=int(reference.size),
    )
    return measured, f"{mismatched} of {reference.size} values differ" if mismatched else ""


def _compare_float(
    reference: npt.NDArray[np.generic], candidate: npt.NDArray[np.generic], tolerance: Tolerance
) -> tuple[_Measured, str]:
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    nan_same = np.array_equal(np.isnan(ref), np.isnan(cand))
    inf_same = np.array_equal(np.where(np.isinf(ref), ref, 0), np.where(np.isinf(cand), cand, 0))
    finite = np.isfinite(ref) & np.isfinite(cand)
    err = np.abs(ref - cand)[finite]
    mag = np.abs(ref)[finite]
    floor = tolerance.atol if tolerance.atol > 0 else _eps(reference.dtype)
    allowed = tolerance.atol + tolerance.rtol * mag
    mismatched = int((err > allowed).sum()) + int(np.sum(np.isnan(ref) != np.isnan(cand)))
    needed = float(np.max(err - tolerance.rtol * mag, initial=0.0))
    argmax, topk, k = _classifier_agreement(ref, cand)
    measured = _Measured(
        max_abs_error=float(err.max(initial=0.0)),
        mean_abs_error=float(err.mean()) if err.size else 0.0,
        max_rel_error=float((err / np.maximum(mag, floor)).max(initial=0.0)),
        rel_error_floor=floor,
        min_passing_atol=max(needed, 0.0) if nan_same and inf_same else math.inf,
        max_ulp=max_ulp(reference, candidate),
        mismatched_elements=mismatched,
        elements=int(reference.size),
        argmax_agreement=argmax,
        topk_agreement=topk,
        top_k=k,
    )
    reason = ""
    if not nan_same:
        reason = "NaN in different places"
    elif not inf_same:
        reason = "Inf in different places"
    elif mismatched:
        limits = f"atol={tolerance.atol:g}, rtol={tolerance.rtol:g}"
        reason = f"{mismatched} of {reference.size} values outside {limits}"
    return measured, reason


def _eps(dtype: np.dtype[np.generic]) -> float:
    return float(np.finfo(dtype.name if dtype.kind == "f" else np.float64).eps)


def max_ulp(reference: npt.NDArray[np.generic], candidate: npt.NDArray[np.generic]) -> int:
    """Largest distance in units in the last place, in the reference's float type (NaN/Inf skipped)."""
    kind = reference.dtype
    if kind not in (np.float16, np.float32, np.float64):
        return -1
    ref = np.ascontiguousarray(reference)
    cand = np.ascontiguousarray(candidate.astype(kind))
    finite = np.isfinite(ref) & np.isfinite(cand)
    if not finite.any():
        return 0
    ints = {2: np.int16, 4: np.int32, 8: np.int64}[kind.itemsize]
    a = _ordered(ref[finite].view(ints))
    b = _ordered(cand[finite].view(ints))
    return int(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _ordered(bits: npt.NDArray[np.signedinteger]) -> npt.NDArray[np.int64]:
    """Map IEEE sign-magnitude bit patterns onto a monotonic integer line (so -0.0 and +0.0 are 0 apart)."""
    wide = bits.astype(np.int64)
    sign_bit = np.int64(1) << np.int64(bits.dtype.itemsize * 8 - 1)
    return np.where(wide < 0, -(wide & (sign_bit - 1)), wide)


def _classifier_agreement(
    ref: npt.NDArray[np.float64], cand: npt.NDArray[np.float64]
) -> tuple[float | None, float | None, int | None]:
    """Argmax and top-k agreement for outputs shaped (batch, classes) with more than one class."""
    if ref.ndim != 2 or ref.shape[1] < 2 or not np.isfinite(ref).all() or not np.isfinite(cand).all():
        return None, None, None
    k = min(TOP_K, ref.shape[1] - 1) or 1
    argmax = float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1)))
    top_ref = np.sort(np.argsort(-ref, axis=1, kind="stable")[:, :k], axis=1)
    top_cand = np.sort(np.argsort(-cand, axis=1, kind="stable")[:, :k], axis=1)
    return argmax, float(np.mean(np.all(top_ref == top_cand, axis=1))), k
