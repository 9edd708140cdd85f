"""Introspect a target interpreter: run the standard-library probe there and turn its record into a Snapshot.

The probe runs in the *target* environment, never in envrepro's own, so envrepro's dependencies cannot
leak into the record. Secrets are redacted by the probe before anything is written, and again here.
"""

from __future__ import annotations

import datetime as dt
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
    InputFileError,
    InterpreterError,
    ModelError,
    ModelProblem,
    ProbeError,
)
from envrepro.fsutil import staged_file, write_atomic
from envrepro.probe.redact import redact
from envrepro.snapshot import Distribution, Environment, ModelRecord, Origin, Snapshot

log = logging.getLogger(__name__)

PROBE_DIR = Path(__file__).resolve().parent / "probe"
PROBE_TIMEOUT_S = 1800.0
MIN_TARGET_PYTHON = (3, 8)


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
        argv += ["--model", model.absolute()]
    if request.inputs is not None:
        argv += ["--inputs", request.inputs.absolute()]
    if request.custom_objects:
        argv += ["--custom-objects", _custom_objects_arg(request.custom_objects)]
    if request.unsafe_deserialization:
        argv.append("--unsafe-deserialization")
    return _run_probe(request.python, argv, out)


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
    record: Mapping[str, Any], refs: Mapping[str, str], now: dt.datetime | None = None
) -> Snapshot:
    """Build the typed Snapshot from a raw probe record; `refs` maps model path -> reference file name."""
    env = dict(record["environment"])
    env["distributions"] = [_with_reproducibility(raw) for raw in env["distributions"]]
    created = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0).isoformat()
    models = [_model_record(raw, refs.get(raw["path"])) for raw in record.get("models", [])]
    return Snapshot.model_validate(
        {
            "envrepro_version": envrepro.__version__,
            "created_at": created,
            "environment": env,
            "models": models,
        }
    )


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
        snap = to_snapshot(record, refs)
        write_snapshot(snap, output, sources)
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
