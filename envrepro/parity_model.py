"""The parity report: typed, frozen, schema-versioned. Its JSON Schema is `envrepro schema parity`."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# A measurement that may be unmeasurable (shapes differ, NaN where the other side has a number): inf in
# memory, null in JSON.
Measure = Annotated[
    float,
    BeforeValidator(lambda value: math.inf if value is None else value),
    PlainSerializer(_finite_or_none, when_used="json"),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "null"}]}),
]


class OutputResult(_Frozen):
    """One output (or preprocessed array) compared: what `compare.compare_output` returns, as reported."""

    name: str
    passed: bool
    reason: str  # "" when passed; else the first thing that failed
    reference_shape: tuple[int, ...]
    candidate_shape: tuple[int, ...]
    reference_dtype: str
    candidate_dtype: str
    atol: float
    rtol: float
    max_abs_error: Measure
    mean_abs_error: Measure
    max_rel_error: Measure
    rel_error_floor: float
    min_passing_atol: Measure  # smallest atol that passes at this rtol (inf if NaN/shape differ)
    max_ulp: int | None  # None: no ULP distance (not a float, or shapes differ)
    mismatched_elements: int
    elements: int
    reference_nan: int
    candidate_nan: int
    reference_inf: int
    candidate_inf: int
    argmax_agreement: float | None  # fraction of rows with the same argmax (classifier-like outputs)
    topk_agreement: float | None  # fraction of rows with the same top-k set
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


class ModelCheck(_Frozen):
    """What a report of a model checked in an image says first (parity's and bisect's)."""

    summary: str
    model: str
    image: str
    snapshot: str


class ParityReport(ModelCheck):
    schema_version: Literal[1] = 1
    verdict: Literal["pass", "fail"]
    model_format: str
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
