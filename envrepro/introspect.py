"""Introspect a target interpreter: run the standard-library probe there and turn its record into a Snapshot.

The probe runs in the *target* environment, never in envrepro's own, so envrepro's dependencies cannot
leak into the record. Secrets are redacted by the probe before anything is written, and again here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import envrepro
from envrepro import proc
from envrepro.data import numerics_env_names
from envrepro.errors import (
    CommandError,
    EnvreproError,
    InputFileError,
    InterpreterError,
    ModelError,
    ModelProblem,
    ProbeError,
)
from envrepro.fsutil import staged_file, write_atomic
from envrepro.probe.redact import redact
from envrepro.snapshot import (
    Distribution,
    Environment,
    ModelRecord,
    Origin,
    PreprocessRecord,
    Snapshot,
)

log = logging.getLogger(__name__)

PROBE_DIR = Path(__file__).resolve().parent / "probe"
PROBE_TIMEOUT_S = 1800.0
MIN_TARGET_PYTHON = (3, 8)
RAW_HINT = "--raw takes an .npz with raw.0, raw.1, ... (one per argument of the function) or one array"


@dataclass(frozen=True)
class ProbeRequest:
    """What to probe: the interpreter, and optionally models to fingerprint and record references for."""

    python: Path
    models: tuple[Path, ...] = ()
    inputs: Path | None = None
    seed: int = 0
    samples: int = 64
    custom_objects: str | None = None
    unsafe_deserialization: bool = False
    preprocess: str | None = None  # MODULE:FUNCTION or FILE.py:FUNCTION, run on `raw`
    raw: Path | None = None
    env_names: tuple[str, ...] = field(default_factory=numerics_env_names)


def resolve_interpreter(python: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """--python PATH (an interpreter or an environment directory), else the active venv, else this one."""
    environ = os.environ if environ is None else environ
    if python:
        candidate = Path(python).expanduser()
        if candidate.is_dir():
            candidate = _interpreter_in(candidate, python)
    elif environ.get("VIRTUAL_ENV"):
        candidate = _interpreter_in(Path(environ["VIRTUAL_ENV"]), environ["VIRTUAL_ENV"])
    elif environ.get("CONDA_PREFIX"):
        candidate = _interpreter_in(Path(environ["CONDA_PREFIX"]), environ["CONDA_PREFIX"])
    else:
        candidate = Path(sys.executable)
    if not candidate.exists():
        raise InterpreterError(str(candidate), "no such file")
    if candidate.is_dir() or not os.access(candidate, os.X_OK):
        raise InterpreterError(str(candidate), "not an executable file")
    return candidate.absolute()


def _interpreter_in(env_dir: Path, shown: str) -> Path:
    for relative in ("bin/python", "bin/python3", "Scripts/python.exe"):
        if (env_dir / relative).exists():
            return env_dir / relative
    raise InterpreterError(shown, "directory holds no bin/python (is it a virtualenv?)")


def check_interpreter(python: Path) -> tuple[int, int]:
    """Run the interpreter once to prove it is a Python envrepro can probe."""
    code = "import sys; print('%d %d' % sys.version_info[:2])"
    try:
        done = proc.run([python, "-c", code], timeout=60)
    except CommandError as exc:
        raise InterpreterError(str(python), f"it did not run Python ({_first_line(exc.stderr)})") from exc
    parts = done.stdout.split()
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise InterpreterError(str(python), "it did not answer like a Python interpreter")
    version = (int(parts[0]), int(parts[1]))
    if version < MIN_TARGET_PYTHON:
        raise InterpreterError(str(python), f"Python {version[0]}.{version[1]} is older than 3.8")
    return version


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def check_models(models: Sequence[Path]) -> None:
    for model in models:
        if not model.exists():
            raise InputFileError(
                model,
                "no such model file or directory",
                hint="supported forms: .h5, .keras, or a SavedModel directory",
            )


def probe(request: ProbeRequest, workdir: Path) -> dict[str, Any]:
    """Run the probe in the target interpreter; return its (already redacted) raw record."""
    check_interpreter(request.python)
    check_models(request.models)
    check_preprocess(request.preprocess, request.raw)
    out = workdir / "record.json"
    refs = workdir / "refs"
    refs.mkdir(exist_ok=True)
    argv: list[str | os.PathLike[str]] = [
        request.python,
        PROBE_DIR / "main.py",
        "--out",
        out,
        "--ref-dir",
        refs,
        "--env-names",
        ",".join(request.env_names),
        "--seed",
        str(request.seed),
        "--samples",
        str(request.samples),
    ]
    for model in request.models:
        argv += ["--model", model.absolute(), "--model-name", str(model)]
    if request.inputs is not None:
        argv += ["--inputs", request.inputs.absolute()]
    if request.custom_objects:
        argv += ["--custom-objects", _custom_objects_arg(request.custom_objects)]
    if request.unsafe_deserialization:
        argv.append("--unsafe-deserialization")
    if request.preprocess and request.raw is not None:
        argv += ["--preprocess", preprocess_arg(request.preprocess), "--raw", request.raw.absolute()]
    return _run_probe(request.python, argv, out)


def check_preprocess(spec: str | None, raw: Path | None) -> None:
    """--preprocess and --raw come together, as MODULE:FUNCTION (or FILE.py:FUNCTION) and an .npz."""
    if (spec is None) != (raw is None):
        given, missing = ("--preprocess", "--raw FILE.npz") if spec else ("--raw", "--preprocess")
        raise EnvreproError(
            f"{given} needs {missing}",
            hint="record preprocessing with --preprocess MODULE:FUNCTION --raw samples.npz",
        )
    if spec is None or raw is None:
        return
    preprocess_arg(spec)
    if not raw.is_file():
        raise InputFileError(
            raw, "no such raw-samples file", hint="--raw takes an .npz (keys raw.0, raw.1, ...)"
        )


def preprocess_arg(spec: str) -> str:
    """The spec with a FILE.py made absolute; refuses what is neither MODULE:FUNCTION nor FILE.py:FUNCTION."""
    module, sep, function = spec.rpartition(":")
    if not sep or not module or not function.isidentifier():
        raise EnvreproError(
            f"--preprocess {spec!r} is not MODULE:FUNCTION or FILE.py:FUNCTION",
            hint="e.g. --preprocess mypkg.data:preprocess or --preprocess prep.py:preprocess",
        )
    if not module.endswith(".py"):
        return spec
    path = Path(module)
    if not path.is_file():
        raise InputFileError(path, "no such preprocessing file")
    return f"{path.absolute()}:{function}"


def _custom_objects_arg(spec: str) -> str:
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise InputFileError(path, "no such custom-objects file")
        return str(path.absolute())
    return spec


def _run_probe(python: Path, argv: Sequence[str | os.PathLike[str]], out: Path) -> dict[str, Any]:
    try:
        done = proc.run(argv, timeout=PROBE_TIMEOUT_S, check=False)
    except CommandError as exc:
        raise ProbeError(str(python), str(exc)) from exc
    if done.stderr.strip():
        log.debug("probe stderr:\n%s", done.stderr.strip())
    if not out.exists():
        raise ProbeError(str(python), f"exit code {done.returncode}: {_first_line(done.stderr)}")
    if done.returncode != 0:
        log.warning(
            "the probe exited with %s after writing the environment record: %s",
            done.returncode,
            _first_line(done.stderr),
        )
    record: dict[str, Any] = redact(json.loads(out.read_text(encoding="utf-8")))
    return record


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
        error = {key: raw["error"][key] for key in ("kind", "detail")}
        return PreprocessRecord.model_validate({"function": raw["function"], "error": error})
    fields = {key: raw[key] for key in ("function", "source_sha256", "samples", "outputs", "arrays_sha256")}
    return PreprocessRecord.model_validate({**fields, "file": ref_file, "raw_from": raw.get("raw_from", "")})


def _npz_digest(raw: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(raw["arrays_sha256"], sort_keys=True).encode()).hexdigest()


class PreprocessError(EnvreproError):
    """The preprocessing function could not be imported or run on the raw samples."""

    def __init__(self, function: str, kind: str, detail: str, output: Path | None = None) -> None:
        note = f" (the environment record was written to {output})" if output is not None else ""
        hint = RAW_HINT if kind == "raw" else "check that the function runs on the raw samples there"
        super().__init__(f"preprocessing {function}: {detail}{note}", hint=hint)
        self.function = function
        self.kind = kind
        self.detail = detail


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


def _with_reproducibility(raw: Mapping[str, Any]) -> Distribution:
    origin = Origin.model_validate(raw["origin"])
    reason = ""
    if origin.kind != "index":
        reason = _ORIGIN_ADVICE[origin.kind].format(url=origin.url, detail=origin.detail, name=raw["name"])
    return Distribution.model_validate({**raw, "reproducible": not reason, "reason": reason})


def _model_record(raw: Mapping[str, Any], ref_file: str | None) -> ModelRecord:
    if raw.get("error"):
        error = {key: raw["error"][key] for key in ("kind", "detail")}
        return ModelRecord(path=raw["path"], error=error)  # type: ignore[arg-type]
    fields = {
        key: raw[key]
        for key in (
            "format",
            "file_sha256",
            "saved_keras_version",
            "architecture_sha256",
            "weights_sha256",
            "weights",
            "inputs",
            "outputs",
        )
    }
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


def take_snapshot(request: ProbeRequest, output: Path) -> Snapshot:
    """Probe the target, then write the snapshot and its reference files atomically (JSON last).

    A model that failed to load is recorded with its error and raised as ModelError *after* the
    environment record is safely written.
    """
    with tempfile.TemporaryDirectory(prefix="envrepro-probe-") as tmp:
        record = probe(request, Path(tmp))
        given = {str(model.absolute()): str(model) for model in request.models}
        ref_dir = reference_dir(output)
        sources: dict[str, Path] = {}
        refs: dict[str, str] = {}
        for raw in record.get("models", []):
            raw["path"] = given.get(raw["path"], raw["path"])
            if raw.get("error"):
                continue
            name = f"{ref_dir.name}/{Path(raw['path']).name}-{raw['file_sha256'][:12]}.npz"
            refs[raw["path"]] = name
            sources[name] = Path(raw["npz"])
        pre, pre_ref = record.get("preprocessing"), ""
        if pre is not None and request.preprocess is not None and request.raw is not None:
            pre["function"] = request.preprocess  # as given, not made absolute
            if not pre.get("error"):
                pre_ref = f"{ref_dir.name}/preprocess-{_npz_digest(pre)[:12]}.npz"
                sources[pre_ref] = Path(pre["npz"])
            record["preprocessing"] = {**pre, "raw_from": "file:" + request.raw.name}
            for raw in record.get("models", []):
                if str(raw.get("inputs_from", "")).startswith("preprocess:"):
                    raw["inputs_from"] = "preprocess:" + request.preprocess
        snap = to_snapshot(record, refs, preprocess_ref=pre_ref)
        write_snapshot(snap, output, sources)
    if snap.preprocessing is not None and snap.preprocessing.error is not None:
        failure = snap.preprocessing.error
        raise PreprocessError(snap.preprocessing.function, failure.kind, failure.detail, output)
    failures = [
        ModelProblem(model.path, model.error.kind, model.error.detail) for model in snap.models if model.error
    ]
    if failures:
        raise ModelError(failures, note=f" (the environment record was written to {output})")
    return snap


def reference_dir(output: Path) -> Path:
    """Where reference arrays live: next to the snapshot, `<name without .json>.ref/`."""
    stem = output.name[: -len(".json")] if output.name.endswith(".json") else output.name
    return output.with_name(stem + ".ref")


def write_snapshot(snap: Snapshot, output: Path, sources: Mapping[str, Path]) -> None:
    """Reference files first, each atomically; then the JSON, so a crash never leaves a dangling record."""
    for relative, source in sorted(sources.items()):
        with staged_file(output.parent / relative) as tmp:
            shutil.copyfile(source, tmp)
    write_atomic(output, snap.to_json())


def environment_of(python: Path) -> Environment:
    """The environment of a live interpreter, without writing anything (for `envrepro diff`)."""
    with tempfile.TemporaryDirectory(prefix="envrepro-probe-") as tmp:
        record = probe(ProbeRequest(python=python), Path(tmp))
    return to_snapshot(record, {}).environment
