"""Parity: run the model inside the image on the reference inputs, compare with the reference, explain.

Only the probe (standard library + the image's own TF/NumPy) runs in the container: envrepro is not
installed there. The container has no network, runs as a non-root user with the model, the probe and
the reference mounted read-only, under a time and a memory limit, and is always removed.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from envrepro import introspect, snapshot
from envrepro.compare import OutputComparison, Tolerance, compare_output, default_tolerance
from envrepro.data import numerics_env_names
from envrepro.diff import Difference, diff
from envrepro.engine import ContainerEngine, Mount
from envrepro.errors import (
    EnvreproError,
    InputFileError,
    ModelError,
    ModelProblem,
)
from envrepro.parity_model import (
    Cause,
    EnvironmentDifference,
    FingerprintCheck,
    OutputResult,
    ParityReport,
)
from envrepro.probe.modelprobe import array_digest
from envrepro.snapshot import Environment, ModelRecord, Snapshot
from envrepro.target import default_image_tag

log = logging.getLogger(__name__)

PROBE_MOUNT = "/envrepro/probe"
MODEL_MOUNT = "/envrepro/model"
REF_MOUNT = "/envrepro/ref/reference.npz"
CUSTOM_MOUNT = "/envrepro/custom"
OUT_MOUNT = "/envrepro/out"
CONTAINER_USER = "10001:10001"


@dataclass(frozen=True)
class ParityRequest:
    snapshot_path: Path
    model: Path
    image: str | None = None
    atol: float | None = None
    rtol: float | None = None
    per_output: Mapping[str, Tolerance] = field(default_factory=dict)
    custom_objects: str | None = None
    unsafe_deserialization: bool = False
    timeout_s: float = 600.0
    memory: str = "4g"


class ReferenceMissingError(EnvreproError):
    def __init__(self, model: str, recorded: Sequence[str], snapshot_path: Path) -> None:
        known = ", ".join(recorded) or "none"
        super().__init__(
            f"{snapshot_path} has no reference outputs for {model} (models recorded: {known})",
            hint=f"record one in the training environment: envrepro snapshot --python PATH --model {model}",
        )
        self.model = model


class ReferenceCorruptError(EnvreproError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"reference {path} is unusable: {reason}", hint="record it again with `envrepro snapshot --model`"
        )
        self.path = path


class ImageNotFoundError(EnvreproError):
    def __init__(self, image: str) -> None:
        super().__init__(
            f"image {image} not found in the Docker engine",
            hint="build it with `envrepro build`, or pass --image NAME:TAG",
        )
        self.image = image


class ProbeTimeoutError(EnvreproError):
    def __init__(self, image: str, timeout_s: float) -> None:
        super().__init__(
            f"the model did not finish in {image} within {timeout_s:.0f} s (the container was removed)",
            hint="raise --timeout, or use fewer reference samples",
        )
        self.image = image
        self.timeout_s = timeout_s


class ContainerRunError(EnvreproError):
    def __init__(self, image: str, exit_code: int, log_tail: str) -> None:
        super().__init__(
            f"the parity probe failed in {image} (exit {exit_code}): {log_tail}",
            hint="run with -v for the container's log",
        )
        self.image = image
        self.exit_code = exit_code
        self.log_tail = log_tail


# ---------------------------------------------------------------------------------------------------------
# The stage


def run_parity(request: ParityRequest, engine: Callable[[], ContainerEngine]) -> ParityReport:
    """Check the inputs, then connect to the engine (`engine()`), run the probe in the image and compare."""
    if not request.model.exists():
        raise InputFileError(request.model, "no such model file or directory")
    snap = snapshot.load(request.snapshot_path)
    record = find_model(snap, request.model, request.snapshot_path)
    reference = load_reference(request.snapshot_path.parent, record)
    image = request.image or default_image_tag(snap.digest())
    live = engine()
    if not live.image_exists(image):
        raise ImageNotFoundError(image)
    with tempfile.TemporaryDirectory(prefix="envrepro-parity-") as tmp:
        raw = _run_in_image(request, live, image, record, Path(tmp))
        candidate_env, candidate_model = _typed(raw)
        outputs = _read_npz(Path(tmp) / "out" / "model-0.npz")
    return build_report(
        request,
        snap,
        record,
        reference,
        image=image,
        image_env=candidate_env,
        candidate=candidate_model,
        outputs=outputs,
        raw=raw,
    )


def find_model(snap: Snapshot, model: Path, snapshot_path: Path) -> ModelRecord:
    """The recorded model with a reference: by path as given, as resolved, or by file name."""
    candidates = [m for m in snap.models if m.reference is not None]
    for match in (
        lambda m: m.path == str(model),
        lambda m: (snapshot_path.parent / m.path).resolve() == model.resolve(),
        lambda m: Path(m.path).name == model.name,
    ):
        found = [m for m in candidates if match(m)]
        if len(found) == 1:
            return found[0]
    raise ReferenceMissingError(str(model), [m.path for m in candidates], snapshot_path)


def load_reference(base: Path, record: ModelRecord) -> dict[str, np.ndarray[Any, Any]]:
    assert record.reference is not None
    path = base / record.reference.file
    if not path.is_file():
        raise ReferenceCorruptError(path, "the file is missing")
    arrays = _read_npz(path)
    for key, digest in record.reference.arrays_sha256.items():
        if key not in arrays or array_digest(arrays[key]) != digest:
            raise ReferenceCorruptError(
                path, f"array {key} does not match the digest recorded in the snapshot"
            )
    return arrays


def _read_npz(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise ReferenceCorruptError(path, str(exc)) from exc


def _run_in_image(
    request: ParityRequest, engine: ContainerEngine, image: str, record: ModelRecord, workdir: Path
) -> dict[str, Any]:
    model_target = f"{MODEL_MOUNT}/{request.model.name}"
    assert record.reference is not None
    mounts = [
        Mount(request.model.resolve(), model_target, read_only=True),
        Mount((request.snapshot_path.parent / record.reference.file).resolve(), REF_MOUNT, read_only=True),
    ]
    args = ["--model", model_target, "--inputs", REF_MOUNT, "--outputs-only"]
    if request.custom_objects:
        args += ["--custom-objects", _mount_custom_objects(request.custom_objects, mounts)]
    if request.unsafe_deserialization:
        args.append("--unsafe-deserialization")
    return probe_in_image(
        engine, image, workdir, args, mounts, timeout_s=request.timeout_s, memory=request.memory
    )


def probe_in_image(
    engine: ContainerEngine,
    image: str,
    workdir: Path,
    args: Sequence[str] = (),
    mounts: Sequence[Mount] = (),
    *,
    timeout_s: float = 600.0,
    memory: str = "4g",
) -> dict[str, Any]:
    """Run the snapshot probe inside `image` (no network, non-root, read-only mounts) and return its record.

    The probe writes into `workdir/out`, the only writable mount."""
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    out.chmod(0o777)
    command = [
        "python3",
        f"{PROBE_MOUNT}/main.py",
        "--out",
        f"{OUT_MOUNT}/record.json",
        "--ref-dir",
        OUT_MOUNT,
        "--env-names",
        ",".join(numerics_env_names()),
        *args,
    ]
    all_mounts = [
        Mount(introspect.PROBE_DIR, PROBE_MOUNT, read_only=True),
        *mounts,
        Mount(out, OUT_MOUNT, read_only=False),
    ]
    result = engine.run(
        image,
        command,
        mounts=all_mounts,
        network_disabled=True,
        user=CONTAINER_USER,
        mem_limit=memory,
        timeout_s=timeout_s,
        environment={"HOME": "/tmp", "TF_CPP_MIN_LOG_LEVEL": "2"},  # noqa: S108 - inside the container
    )
    log.debug("container log:\n%s", result.logs)
    if result.timed_out:
        raise ProbeTimeoutError(image, timeout_s)
    record_path = out / "record.json"
    if not record_path.exists():
        raise ContainerRunError(image, result.exit_code, _tail(result.logs))
    raw: dict[str, Any] = json.loads(record_path.read_text(encoding="utf-8"))
    return raw


def image_environment(engine: ContainerEngine, image: str) -> Environment:
    """The environment inside `image`, read by the snapshot probe (for `envrepro diff image:REF ...`)."""
    if not engine.image_exists(image):
        raise ImageNotFoundError(image)
    with tempfile.TemporaryDirectory(prefix="envrepro-diff-") as tmp:
        raw = probe_in_image(engine, image, Path(tmp))
    return introspect.to_snapshot({"environment": raw["environment"], "models": []}, {}).environment


def _mount_custom_objects(spec: str, mounts: list[Mount]) -> str:
    if not spec.endswith(".py"):
        return spec  # a module importable inside the image
    path = Path(spec)
    if not path.is_file():
        raise InputFileError(path, "no such custom-objects file")
    target = f"{CUSTOM_MOUNT}/{path.name}"
    mounts.append(Mount(path.resolve(), target, read_only=True))
    return target


def _tail(logs: str, lines: int = 3) -> str:
    kept = [line.strip() for line in logs.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "no output"


def _typed(raw: Mapping[str, Any]) -> tuple[Environment, ModelRecord]:
    models = raw.get("models") or [
        {"path": "?", "error": {"kind": "probe_failed", "detail": "no model record"}}
    ]
    failure = models[0].get("error")
    if failure:
        detail = f"{failure['detail']} (inside the image)"
        raise ModelError([ModelProblem(models[0]["path"], failure["kind"], detail)])
    snap = introspect.to_snapshot({"environment": raw["environment"], "models": []}, {})
    model = introspect.to_snapshot({"environment": raw["environment"], "models": models}, {}).models[0]
    return snap.environment, model


# ---------------------------------------------------------------------------------------------------------
# Comparison and explanation


def build_report(
    request: ParityRequest,
    snap: Snapshot,
    record: ModelRecord,
    reference: Mapping[str, np.ndarray[Any, Any]],
    *,
    image: str,
    image_env: Environment,
    candidate: ModelRecord,
    outputs: Mapping[str, np.ndarray[Any, Any]],
    raw: Mapping[str, Any],
) -> ParityReport:
    comparisons = compare_outputs(record, reference, outputs, request)
    fingerprints = _fingerprints(record, candidate)
    mismatch = not all(check.same for check in fingerprints if check.what != "file")
    differences = diff(snap.environment, image_env)
    numeric_fail = not all(c.passed for c in comparisons)
    verdict: Literal["pass", "fail"] = "fail" if numeric_fail or mismatch else "pass"
    causes = likely_causes(fingerprints, differences, comparisons)
    warnings = tuple(
        f"{d.field}: {d.before} in training, {d.after} in the image ({d.why})"
        for d in differences
        if d.kind == "python_patch"
    )
    timings = {k: float(v) for k, v in ((raw.get("models") or [{}])[0].get("timings") or {}).items()}
    return ParityReport(
        verdict=verdict,
        summary=_summary(verdict, comparisons, mismatch, causes),
        model=str(request.model),
        model_format=candidate.format or "",
        image=image,
        snapshot=str(request.snapshot_path),
        snapshot_digest=snap.digest(),
        samples=record.reference.samples if record.reference else 0,
        model_mismatch=mismatch,
        outputs=tuple(_output_result(c) for c in comparisons),
        fingerprints=fingerprints,
        differences=tuple(_difference(d) for d in differences),
        likely_causes=causes,
        warnings=warnings,
        timings=timings,
    )


def compare_outputs(
    record: ModelRecord,
    reference: Mapping[str, np.ndarray[Any, Any]],
    outputs: Mapping[str, np.ndarray[Any, Any]],
    request: ParityRequest,
) -> list[OutputComparison]:
    results = []
    for index, spec in enumerate(record.outputs):
        key = f"output.{index}"
        ref = reference[key]
        cand = outputs.get(key, np.zeros((0,), dtype=ref.dtype))
        results.append(
            compare_output(spec.name, ref, cand, tolerance_for(spec.name, str(ref.dtype), request))
        )
    return results


def tolerance_for(name: str, dtype: str, request: ParityRequest) -> Tolerance:
    if name in request.per_output:
        return request.per_output[name]
    default = default_tolerance(dtype)
    return Tolerance(
        atol=default.atol if request.atol is None else request.atol,
        rtol=default.rtol if request.rtol is None else request.rtol,
    )


def _fingerprints(record: ModelRecord, candidate: ModelRecord) -> tuple[FingerprintCheck, ...]:
    pairs = (
        ("file", record.file_sha256, candidate.file_sha256),
        ("architecture", record.architecture_sha256, candidate.architecture_sha256),
        ("weights", record.weights_sha256, candidate.weights_sha256),
    )
    return tuple(
        FingerprintCheck(what=what, reference=a, candidate=b, same=a == b)  # type: ignore[arg-type]
        for what, a, b in pairs
    )


def likely_causes(
    fingerprints: Sequence[FingerprintCheck],
    differences: Sequence[Difference],
    comparisons: Sequence[OutputComparison],
) -> tuple[Cause, ...]:
    """Most likely first: a different model, then environment differences that move numbers."""
    causes: list[Cause] = []
    by_what = {check.what: check for check in fingerprints}
    if not by_what["architecture"].same:
        causes.append(
            Cause(
                cause="the model's architecture differs from the recorded model",
                evidence="architecture sha256 " + _short(by_what["architecture"]),
            )
        )
    if not by_what["weights"].same:
        causes.append(
            Cause(
                cause="the model's weights differ from the recorded model",
                evidence="weights sha256 " + _short(by_what["weights"]),
            )
        )
    moved = any(c.max_abs_error not in (0.0,) or c.mismatched_elements for c in comparisons)
    if moved:
        for d in differences:
            if d.group in ("breaks", "may"):
                causes.append(
                    Cause(cause=_cause_text(d), evidence=f"{d.field}: {d.before} → {d.after}. {d.why}")
                )
    return tuple(causes)


def _short(check: FingerprintCheck) -> str:
    return f"{check.reference[:12]} recorded, {check.candidate[:12]} now"


_CAUSE_TEXT = {
    "keras_major": "the Keras major version changed",
    "keras_module": "tf.keras resolves to another Keras",
    "tensorflow": "the TensorFlow version changed",
    "numpy_major": "NumPy 1 vs 2",
    "cuda": "CUDA changed",
    "cudnn": "cuDNN changed",
    "onednn": "oneDNN optimisations differ",
    "xla": "XLA/JIT settings differ",
    "tf32": "TF32 setting differs",
    "determinism": "determinism settings differ",
    "python_minor": "the Python minor version changed",
    "cpu_flags": "the CPU's vector instructions differ",
}


def _cause_text(d: Difference) -> str:
    return _CAUSE_TEXT.get(d.kind, f"{d.field} differs")


def _summary(
    verdict: str, comparisons: Sequence[OutputComparison], mismatch: bool, causes: Sequence[Cause]
) -> str:
    worst = max((c.max_abs_error for c in comparisons), default=0.0)
    worst_text = "exactly equal" if worst == 0 else f"max abs error {worst:.3g}"
    if verdict == "pass":
        return f"PASS: {len(comparisons)} output(s) within tolerance ({worst_text})"
    if mismatch:
        return f"FAIL: model mismatch, {causes[0].cause} ({worst_text})"
    failed = [c.name for c in comparisons if not c.passed]
    why = f"; likely cause: {causes[0].cause}" if causes else ""
    return f"FAIL: output(s) {', '.join(failed)} outside tolerance ({worst_text}){why}"


def _finite(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else value


def _output_result(c: OutputComparison) -> OutputResult:
    return OutputResult(
        name=c.name,
        passed=c.passed,
        reason=c.reason,
        reference_shape=c.reference_shape,
        candidate_shape=c.candidate_shape,
        reference_dtype=c.reference_dtype,
        candidate_dtype=c.candidate_dtype,
        atol=c.atol,
        rtol=c.rtol,
        max_abs_error=_finite(c.max_abs_error),
        mean_abs_error=_finite(c.mean_abs_error),
        max_rel_error=_finite(c.max_rel_error),
        rel_error_floor=c.rel_error_floor,
        min_passing_atol=_finite(c.min_passing_atol),
        max_ulp=None if c.max_ulp < 0 else c.max_ulp,
        mismatched_elements=c.mismatched_elements,
        elements=c.elements,
        reference_nan=c.reference_nan,
        candidate_nan=c.candidate_nan,
        reference_inf=c.reference_inf,
        candidate_inf=c.candidate_inf,
        argmax_agreement=c.argmax_agreement,
        topk_agreement=c.topk_agreement,
        top_k=c.top_k,
    )


def _difference(d: Difference) -> EnvironmentDifference:
    return EnvironmentDifference(
        kind=d.kind,
        group=d.group,
        field=d.field,
        training=d.before,
        image=d.after,
        why=d.why,
        source=d.source,
    )
