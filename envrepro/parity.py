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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from envrepro import introspect, snapshot
from envrepro.compare import OutputComparison, Tolerance, compare_output, default_tolerance
from envrepro.data import difference_kinds, numerics_env_names
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
    Stage,
)
from envrepro.probe.modelprobe import array_digest
from envrepro.render import UID
from envrepro.snapshot import Environment, ModelRecord, PreprocessRecord, Snapshot
from envrepro.target import default_image_tag

log = logging.getLogger(__name__)

PROBE_MOUNT = "/envrepro/probe"
MODEL_MOUNT = "/envrepro/model"
REF_MOUNT = "/envrepro/ref/reference.npz"
CUSTOM_MOUNT = "/envrepro/custom"
PREPROCESS_MOUNT = "/envrepro/preprocess"
RAW_MOUNT = "/envrepro/ref/preprocess.npz"
OUT_MOUNT = "/envrepro/out"
CONTAINER_USER = f"{UID}:{UID}"  # the non-root user the rendered images create


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
    # Where the preprocessing function is now (MODULE:FUNCTION or FILE.py:FUNCTION); default: as recorded.
    preprocess: str | None = None


@dataclass(frozen=True)
class PreprocessRun:
    """The recorded preprocessing, its reference arrays, and the function to replay in the image."""

    record: PreprocessRecord
    reference: dict[str, np.ndarray[Any, Any]]
    reference_path: Path
    spec: str


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
    pre = preprocess_run(request, snap)
    image = request.image or default_image_tag(snap.digest())
    live = engine()
    if not live.image_exists(image):
        raise ImageNotFoundError(image)
    with tempfile.TemporaryDirectory(prefix="envrepro-parity-") as tmp:
        raw = _run_in_image(request, live, image, record, Path(tmp), pre=pre)
        preprocessed = _preprocessed(raw, Path(tmp) / "out") if pre else {}
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
        preprocess=pre,
        preprocessed=preprocessed,
    )


def preprocess_run(request: ParityRequest, snap: Snapshot) -> PreprocessRun | None:
    """The snapshot's preprocessing to replay, with its verified reference; None when none was recorded."""
    recorded = snap.preprocessing
    if recorded is None:
        if request.preprocess:
            raise EnvreproError(
                f"{request.snapshot_path} has no recorded preprocessing to compare --preprocess with",
                hint="record it in the training environment: envrepro snapshot --preprocess F --raw FILE.npz",
            )
        return None
    if recorded.error is not None or not recorded.file:
        log.warning("the snapshot's preprocessing failed when it was recorded; it is not compared")
        return None
    path = request.snapshot_path.parent / recorded.file
    arrays = _verified(path, recorded.arrays_sha256)
    spec = request.preprocess or _recorded_spec(recorded.function, request.snapshot_path.parent)
    return PreprocessRun(recorded, arrays, path, spec)


def _recorded_spec(spec: str, base: Path) -> str:
    """A recorded FILE.py:FUNCTION as given at snapshot time: from here, else next to the snapshot."""
    module, _, function = spec.rpartition(":")
    if module.endswith(".py") and not Path(module).is_file() and (base / module).is_file():
        return f"{base / module}:{function}"
    return spec


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
    return _verified(base / record.reference.file, record.reference.arrays_sha256)


def _verified(path: Path, digests: Mapping[str, str]) -> dict[str, np.ndarray[Any, Any]]:
    if not path.is_file():
        raise ReferenceCorruptError(path, "the file is missing")
    arrays = _read_npz(path)
    for key, digest in digests.items():
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
    request: ParityRequest,
    engine: ContainerEngine,
    image: str,
    record: ModelRecord,
    workdir: Path,
    *,
    pre: PreprocessRun | None = None,
) -> dict[str, Any]:
    model_target = f"{MODEL_MOUNT}/{request.model.name}"
    assert record.reference is not None
    mounts = [
        Mount(request.model.resolve(), model_target, read_only=True),
        Mount((request.snapshot_path.parent / record.reference.file).resolve(), REF_MOUNT, read_only=True),
    ]
    args = [
        "--model",
        model_target,
        "--model-name",
        str(request.model),
        "--inputs",
        REF_MOUNT,
        "--outputs-only",
    ]
    if request.custom_objects:
        args += ["--custom-objects", _mount_custom_objects(request.custom_objects, mounts)]
    if request.unsafe_deserialization:
        args.append("--unsafe-deserialization")
    if pre is not None:
        mounts.append(Mount(pre.reference_path.resolve(), RAW_MOUNT, read_only=True))
        args += ["--preprocess", _mount_preprocess(pre.spec, mounts), "--raw", RAW_MOUNT]
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


def _mount_preprocess(spec: str, mounts: list[Mount]) -> str:
    """A FILE.py's directory is mounted read-only, so that files it reads next to itself come along."""
    module, _, function = spec.rpartition(":")
    if not module.endswith(".py"):
        return spec  # a module importable inside the image
    path = Path(module)
    if not path.is_file():
        raise InputFileError(path, "no such preprocessing file", hint="pass --preprocess FILE.py:FUNCTION")
    mounts.append(Mount(path.parent.resolve(), PREPROCESS_MOUNT, read_only=True))
    return f"{PREPROCESS_MOUNT}/{path.name}:{function}"


def _preprocessed(raw: Mapping[str, Any], out: Path) -> dict[str, np.ndarray[Any, Any]]:
    record = raw.get("preprocessing") or {
        "function": "?",
        "error": {"kind": "preprocess", "detail": "no record"},
    }
    failure = record.get("error")
    if failure:
        raise introspect.PreprocessError(
            record["function"], failure["kind"], f"{failure['detail']} (inside the image)"
        )
    return _read_npz(out / "preprocess.npz")


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
    snap = introspect.to_snapshot({"environment": raw["environment"], "models": models[:1]}, {})
    return snap.environment, snap.models[0]


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
    preprocess: PreprocessRun | None = None,
    preprocessed: Mapping[str, np.ndarray[Any, Any]] | None = None,
) -> ParityReport:
    comparisons = compare_outputs(record, reference, outputs, request)
    pre_comparisons = (
        compare_preprocessed(preprocess, preprocessed or {}, request) if preprocess is not None else []
    )
    fingerprints = _fingerprints(record, candidate)
    mismatch = not all(check.same for check in fingerprints if check.what != "file")
    differences = diff(snap.environment, image_env)
    model_fail = mismatch or not all(c.passed for c in comparisons)
    pre_fail = not all(c.passed for c in pre_comparisons)
    stage = _stage(pre_fail, model_fail)
    verdict: Literal["pass", "fail"] = "fail" if stage != "none" else "pass"
    causes = likely_causes(fingerprints, differences, comparisons)
    if pre_fail and preprocess is not None:
        causes = (_preprocess_cause(preprocess, pre_comparisons, raw), *causes)
    warnings = tuple(
        f"{d.field}: {d.before} in training, {d.after} in the image ({d.why})"
        for d in differences
        if d.kind == "python_patch"
    ) + model_checks(candidate, reference, _pre_state(preprocess, pre_fail))
    timings = {k: float(v) for k, v in ((raw.get("models") or [{}])[0].get("timings") or {}).items()}
    return ParityReport(
        verdict=verdict,
        summary=_summary(stage, comparisons, pre_comparisons, mismatch, causes),
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
        stage=stage,
        preprocess_function=preprocess.spec if preprocess else "",
        preprocessing=tuple(_output_result(c) for c in pre_comparisons),
    )


def _stage(pre_fail: bool, model_fail: bool) -> Stage:
    if pre_fail and model_fail:
        return "both"
    if pre_fail:
        return "preprocessing"
    return "model" if model_fail else "none"


def compare_preprocessed(
    pre: PreprocessRun, candidate: Mapping[str, np.ndarray[Any, Any]], request: ParityRequest
) -> list[OutputComparison]:
    """The function's arrays in the image against the training ones, with the model outputs' statistics."""
    results = []
    for index, spec in enumerate(pre.record.outputs):
        key = f"preprocessed.{index}"
        ref = pre.reference[key]
        cand = candidate.get(key, np.zeros((0,), dtype=ref.dtype))
        results.append(
            compare_output(spec.name, ref, cand, tolerance_for(spec.name, str(ref.dtype), request))
        )
    return results


def _preprocess_cause(
    pre: PreprocessRun, comparisons: Sequence[OutputComparison], raw: Mapping[str, Any]
) -> Cause:
    worst = next(c for c in comparisons if not c.passed)
    now = (raw.get("preprocessing") or {}).get("source_sha256", "")
    recorded = pre.record.source_sha256
    if recorded and now and recorded != now:
        source = f"its source changed ({recorded[:12]} recorded, {now[:12]} now)"
    else:
        source = (
            "its source is unchanged, so what it reads (data files such as normalisation statistics) "
            "or the libraries it calls differ"
        )
    return Cause(
        cause=f"the preprocessing function {pre.spec} gives other arrays in the image",
        evidence=f"{worst.name}: {worst.reason} (max abs error {worst.max_abs_error:.3g}); {source}",
    )


def _pre_state(pre: PreprocessRun | None, failed: bool) -> str:
    if pre is None:
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
    moved = any(c.max_abs_error != 0.0 or c.mismatched_elements for c in comparisons)
    if moved:
        for d in differences:
            if d.group in ("breaks", "may"):
                causes.append(
                    Cause(cause=_cause_text(d), evidence=f"{d.field}: {d.before} → {d.after}. {d.why}")
                )
    return tuple(causes)


def _short(check: FingerprintCheck) -> str:
    return f"{check.reference[:12]} recorded, {check.candidate[:12]} now"


def _cause_text(d: Difference) -> str:
    return difference_kinds()[d.kind].get("cause") or f"{d.field} differs"


def _summary(
    stage: Stage,
    comparisons: Sequence[OutputComparison],
    pre_comparisons: Sequence[OutputComparison],
    mismatch: bool,
    causes: Sequence[Cause],
) -> str:
    worst_text = _worst(comparisons)
    if stage == "none":
        checked = f"; preprocessing matches ({_worst(pre_comparisons)})" if pre_comparisons else ""
        return f"PASS: {len(comparisons)} output(s) within tolerance ({worst_text}){checked}"
    pre_text = ""
    if stage in ("preprocessing", "both"):
        failed = [c.name for c in pre_comparisons if not c.passed]
        pre_text = f"preprocessing differs: {', '.join(failed)} outside tolerance ({_worst(pre_comparisons)})"
    if stage == "preprocessing":
        return f"FAIL: {pre_text}; the model itself matches on the recorded inputs ({worst_text})"
    model_causes = [c.cause for c in causes if not c.cause.startswith("the preprocessing")]
    if mismatch:
        model_text = f"model mismatch, {model_causes[0]} ({worst_text})"
    else:
        failed = [c.name for c in comparisons if not c.passed]
        why = f"; likely cause: {model_causes[0]}" if model_causes else ""
        model_text = f"output(s) {', '.join(failed)} outside tolerance ({worst_text}){why}"
    if stage == "both":
        return f"FAIL: {pre_text}; and model differs: {model_text}"
    return f"FAIL: {model_text}"


def _worst(comparisons: Sequence[OutputComparison]) -> str:
    worst = max((c.max_abs_error for c in comparisons), default=0.0)
    return "exactly equal" if worst == 0 else f"max abs error {worst:.3g}"


def _finite(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else value


def _output_result(c: OutputComparison) -> OutputResult:
    """The same fields; infinities and NaN (and the -1 of 'no ULP distance') become null in JSON."""
    return OutputResult.model_validate(
        {
            **asdict(c),
            "max_abs_error": _finite(c.max_abs_error),
            "mean_abs_error": _finite(c.mean_abs_error),
            "max_rel_error": _finite(c.max_rel_error),
            "min_passing_atol": _finite(c.min_passing_atol),
            "max_ulp": None if c.max_ulp < 0 else c.max_ulp,
        }
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
