"""The parity report: typed, frozen, schema-versioned. Its JSON Schema is `envrepro schema parity`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OutputResult(_Frozen):
    name: str
    passed: bool
    reason: str
    reference_shape: tuple[int, ...]
    candidate_shape: tuple[int, ...]
    reference_dtype: str
    candidate_dtype: str
    atol: float
    rtol: float
    max_abs_error: float | None
    mean_abs_error: float | None
    max_rel_error: float | None
    rel_error_floor: float
    min_passing_atol: float | None
    max_ulp: int | None
    mismatched_elements: int
    elements: int
    reference_nan: int
    candidate_nan: int
    reference_inf: int
    candidate_inf: int
    argmax_agreement: float | None
    topk_agreement: float | None
    top_k: int | None


class FingerprintCheck(_Frozen):
    what: Literal["file", "architecture", "weights"]
    reference: str
    candidate: str
    same: bool


class EnvironmentDifference(_Frozen):
    kind: str
    group: Literal["breaks", "may", "cosmetic"]
    field: str
    training: str
    image: str
    why: str
    source: str


class Cause(_Frozen):
    cause: str
    evidence: str


Stage = Literal["none", "preprocessing", "model", "both"]


class ParityReport(_Frozen):
    schema_version: Literal[1] = 1
    verdict: Literal["pass", "fail"]
    summary: str
    model: str
    model_format: str
    image: str
    snapshot: str
    snapshot_digest: str
    samples: int
    model_mismatch: bool
    outputs: tuple[OutputResult, ...]
    fingerprints: tuple[FingerprintCheck, ...]
    differences: tuple[EnvironmentDifference, ...]
    likely_causes: tuple[Cause, ...]
    warnings: tuple[str, ...]
    timings: dict[str, float]
    # Which stage failed: "preprocessing" (the user's function gives other arrays in the image), "model"
    # (outputs or fingerprints differ on the recorded inputs), "both", or "none" when parity passed.
    stage: Stage = "none"
    preprocess_function: str = ""
    preprocessing: tuple[OutputResult, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"
