"""Parity: load the reference -> run the model in the image -> compare -> explain -> report.

This module only chains the stages: `reference` (the training side), `runner` (the probe inside a
locked-down container of the image), `compare` (pure NumPy), `explain` (pure causes) and the typed
`ParityReport`. Only the probe (standard library + the image's own TF/NumPy) runs in the container:
envrepro is not installed there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envrepro import explain, runner, snapshot
from envrepro.compare import compare_output
from envrepro.diff import diff
from envrepro.engine_api import ContainerEngine
from envrepro.errors import InputFileError
from envrepro.image_run import ImageRun, image_run
from envrepro.parity_model import Cause, OutputResult, ParityReport
from envrepro.reference import (
    Arrays,
    PreprocessRun,
    find_model,
    load_reference,
    preprocess_run,
    reference_path,
)
from envrepro.runner import InFile, Limits, in_path
from envrepro.snapshot import Environment, ModelRecord, Snapshot
from envrepro.target import default_image_tag
from envrepro.tolerance import Tolerances


@dataclass(frozen=True)
class ParityRequest:
    snapshot_path: Path
    model: Path
    image: str | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    custom_objects: str | None = None
    unsafe_deserialization: bool = False
    limits: Limits = field(default_factory=Limits)
    # Where the preprocessing function is now (MODULE:FUNCTION or FILE.py:FUNCTION); default: as recorded.
    preprocess: str | None = None
    # Variables set (None: unset) for this run only, over the image's own (bisect's variants).
    environment: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class ParityRun:
    """A parity report and the two environments it compared (what bisect groups)."""

    report: ParityReport
    training: Environment
    image: Environment


def run_parity(request: ParityRequest, engine: Callable[[], ContainerEngine]) -> ParityReport:
    """Check the inputs, then connect to the engine (`engine()`), run the probe in the image and compare."""
    return parity_run(request, engine).report


def parity_run(request: ParityRequest, engine: Callable[[], ContainerEngine]) -> ParityRun:
    """`run_parity`, keeping the training and image environments."""
    if not request.model.exists():
        raise InputFileError(request.model, "no such model file or directory")
    snap = snapshot.load(request.snapshot_path)
    record = find_model(snap, request.model, request.snapshot_path)
    reference = load_reference(request.snapshot_path.parent, record)
    pre = preprocess_run(snap, request.snapshot_path, request.preprocess)
    request.tolerances.check_names(_output_names(record, pre))
    image = request.image or default_image_tag(snap.digest())
    args, inputs = probe_arguments(request, record, pre)
    env = dict(request.environment)
    output = runner.run_probe(engine(), image, args, inputs, request.limits, environment=env)
    ran = image_run(output, pre is not None)
    report = build_report(request, snap, record, reference, image=image, ran=ran, pre=pre)
    return ParityRun(report, snap.environment, ran.environment)


def _output_names(record: ModelRecord, pre: PreprocessRun | None) -> list[str]:
    return [spec.name for spec in record.outputs] + ([s.name for s in pre.record.outputs] if pre else [])


def probe_arguments(
    request: ParityRequest, record: ModelRecord, pre: PreprocessRun | None
) -> tuple[list[str], list[InFile]]:
    """The probe's arguments and the files it needs, sent to /envrepro/in/ (read-only there)."""
    model = InFile(request.model.resolve(), f"model/{request.model.name}")
    ref = InFile(reference_path(request.snapshot_path.parent, record).resolve(), "reference.npz")
    inputs = [model, ref]
    args = [
        *("--model", in_path(model.target), "--model-name", str(request.model)),
        *("--inputs", in_path(ref.target), "--outputs-only"),
    ]
    if request.custom_objects:
        args += ["--custom-objects", _custom_objects(request.custom_objects, inputs)]
    if request.unsafe_deserialization:
        args.append("--unsafe-deserialization")
    if pre is not None:
        inputs.append(InFile(pre.reference_path.resolve(), "preprocess.npz"))
        args += ["--preprocess", _preprocess(pre.spec, inputs), "--raw", in_path("preprocess.npz")]
    return args, inputs


def _custom_objects(spec: str, inputs: list[InFile]) -> str:
    if not spec.endswith(".py"):
        return spec  # a module importable inside the image
    path = Path(spec)
    if not path.is_file():
        raise InputFileError(path, "no such custom-objects file")
    inputs.append(InFile(path.resolve(), f"custom/{path.name}"))
    return in_path(f"custom/{path.name}")


def _preprocess(spec: str, inputs: list[InFile]) -> str:
    """A FILE.py's directory goes in whole (read-only), so that files it reads next to itself come along."""
    module, _, function = spec.rpartition(":")
    if not module.endswith(".py"):
        return spec  # a module importable inside the image
    path = Path(module)
    if not path.is_file():
        raise InputFileError(path, "no such preprocessing file", hint="pass --preprocess FILE.py:FUNCTION")
    inputs.append(InFile(path.parent.resolve(), "preprocess"))
    return f"{in_path('preprocess')}/{path.name}:{function}"


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
    tolerances: Tolerances, record: ModelRecord, reference: Arrays, ran: ImageRun, pre: PreprocessRun | None
) -> tuple[list[OutputResult], list[OutputResult]]:
    outputs = compare_all([s.name for s in record.outputs], "output", reference, ran.outputs, tolerances)
    if pre is None:
        return outputs, []
    names = [s.name for s in pre.record.outputs]
    return outputs, compare_all(names, "preprocessed", pre.reference, ran.preprocessed, tolerances)


def _preprocess_cause(pre: PreprocessRun, compared: Sequence[OutputResult], ran: ImageRun) -> Cause:
    now = str((ran.output.record.get("preprocessing") or {}).get("source_sha256", ""))
    return explain.preprocess_cause(pre.spec, compared, pre.record.source_sha256, now)


def build_report(
    request: ParityRequest,
    snap: Snapshot,
    record: ModelRecord,
    reference: Arrays,
    *,
    image: str,
    ran: ImageRun,
    pre: PreprocessRun | None,
) -> ParityReport:
    outputs, pre_outputs = _comparisons(request.tolerances, record, reference, ran, pre)
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
        warnings=explain.warnings(differences, ran.model, reference, pre is not None, pre_fail),
        timings=ran.timings,
        stage=stage,
        preprocess_function=pre.spec if pre else "",
        preprocessing=tuple(pre_outputs),
    )
