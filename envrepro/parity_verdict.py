"""Parity's numeric side: the image's arrays against the training side's -> the causes -> the ParityReport.

`compare` (pure NumPy) per output, `explain` (pure causes) over the fingerprints and the environment diff.
parity.py imports this module while the image runs, so that NumPy is not on the way to the container's
start (bench/parity_bench.py measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from envrepro import explain
from envrepro.compare import compare_output
from envrepro.diff import diff
from envrepro.parity_model import Cause, OutputResult, ParityReport
from envrepro.reference import Arrays, PreprocessRun, References
from envrepro.snapshot import ModelRecord, Snapshot
from envrepro.tolerance import Tolerances

if TYPE_CHECKING:
    from envrepro.image_run import ImageRun
    from envrepro.parity import ParityRequest


def compare_all(
    specs: Sequence[str], prefix: str, reference: Arrays, candidate: Arrays, tolerances: Tolerances
) -> list[OutputResult]:
    """Each named array `prefix.N` of the reference against the image's (missing: an empty array)."""
    results = []
    for index, name in enumerate(specs):
        ref = reference[f"{prefix}.{index}"]
        cand = candidate.get(f"{prefix}.{index}", np.zeros((0,), dtype=ref.dtype))
        results.append(compare_output(name, ref, cand, tolerances.for_output(name, str(ref.dtype))))
    return results


def _comparisons(
    tolerances: Tolerances,
    record: ModelRecord,
    references: References,
    ran: ImageRun,
    pre: PreprocessRun | None,
) -> tuple[list[OutputResult], list[OutputResult]]:
    names = [s.name for s in record.outputs]
    outputs = compare_all(names, "output", references.model, ran.outputs, tolerances)
    if pre is None:
        return outputs, []
    names = [s.name for s in pre.record.outputs]
    return outputs, compare_all(names, "preprocessed", references.preprocessing, ran.preprocessed, tolerances)


def _preprocess_cause(pre: PreprocessRun, compared: Sequence[OutputResult], ran: ImageRun) -> Cause:
    now = str((ran.output.record.get("preprocessing") or {}).get("source_sha256", ""))
    return explain.preprocess_cause(pre.spec, compared, pre.record.source_sha256, now)


def build_report(
    request: ParityRequest,
    snap: Snapshot,
    record: ModelRecord,
    references: References,
    *,
    image: str,
    ran: ImageRun,
    pre: PreprocessRun | None,
) -> ParityReport:
    outputs, pre_outputs = _comparisons(request.tolerances, record, references, ran, pre)
    checks = explain.fingerprints(record, ran.model)
    mismatch = explain.model_mismatch(checks)
    differences = diff(snap.environment, ran.environment)
    pre_fail = not all(c.passed for c in pre_outputs)
    stage = explain.stage(pre_fail, mismatch or not all(c.passed for c in outputs))
    causes = explain.likely_causes(checks, differences, outputs)
    if pre_fail and pre is not None:
        causes = (_preprocess_cause(pre, pre_outputs, ran), *causes)
    return ParityReport(
        verdict="fail" if stage != "none" else "pass",
        summary=explain.summary(stage, outputs, pre_outputs, mismatch, causes),
        model=str(request.model),
        model_format=ran.model.format or "",
        image=image,
        snapshot=str(request.snapshot_path),
        snapshot_digest=snap.digest(),
        samples=record.reference.samples if record.reference else 0,
        model_mismatch=mismatch,
        outputs=tuple(outputs),
        fingerprints=checks,
        differences=tuple(explain.environment_difference(d) for d in differences),
        likely_causes=causes,
        warnings=explain.warnings(differences, ran.model, references.model, pre is not None, pre_fail),
        timings=ran.timings,
        stage=stage,
        preprocess_function=pre.spec if pre else "",
        preprocessing=tuple(pre_outputs),
    )
