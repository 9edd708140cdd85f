"""Introspect a target interpreter: run the standard-library probe there and return its raw record.

The probe runs in the *target* environment, never in envrepro's own, so envrepro's dependencies cannot
leak into the record. Secrets are redacted by the probe before anything is written, and again here.
`record` turns the raw record into the typed Snapshot; `snapshot_file` writes it with its references.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envrepro import proc
from envrepro.data import numerics_env_names
from envrepro.errors import (
    CommandError,
    EnvreproError,
    InputFileError,
    InterpreterError,
    ModelError,
    ModelProblem,
    PreprocessError,
    ProbeError,
)
from envrepro.probe import PROBE_DIR
from envrepro.probe.redact import redact
from envrepro.record import to_snapshot
from envrepro.snapshot import Environment, Snapshot
from envrepro.snapshot_file import reference_dir, write_snapshot

__all__ = [  # PreprocessError, reference_dir and to_snapshot are re-exported for parity.py (their homes:
    # errors.py, snapshot_file.py, record.py)
    "PreprocessError",
    "ProbeRequest",
    "check_interpreter",
    "check_models",
    "check_preprocess",
    "environment_of",
    "preprocess_arg",
    "probe",
    "reference_dir",
    "resolve_interpreter",
    "take_snapshot",
    "to_snapshot",
]

log = logging.getLogger(__name__)

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
        raise InterpreterError(str(python), f"it did not run Python ({_last_line(exc.stderr)})") from exc
    parts = done.stdout.split()
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise InterpreterError(str(python), "it did not answer like a Python interpreter")
    version = (int(parts[0]), int(parts[1]))
    if version < MIN_TARGET_PYTHON:
        raise InterpreterError(str(python), f"Python {version[0]}.{version[1]} is older than 3.8")
    return version


def _last_line(text: str) -> str:
    """The last non-blank line of a command's output: where a Python traceback names its exception."""
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
    if request.inputs is not None and not request.inputs.is_file():
        raise InputFileError(request.inputs, "no such inputs file", hint="--inputs takes an .npz file")
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
        raise ProbeError(str(python), f"exit code {done.returncode}: {_last_line(done.stderr)}")
    if done.returncode != 0:
        log.warning(
            "the probe exited with %s after writing the environment record: %s",
            done.returncode,
            _last_line(done.stderr),
        )
    record: dict[str, Any] = redact(json.loads(out.read_text(encoding="utf-8")))
    return record


def take_snapshot(request: ProbeRequest, output: Path) -> Snapshot:
    """Probe the target, then write the snapshot and its reference files as a pair.

    Only a complete record is written: a model or a preprocessing function that failed is raised as
    ModelError / PreprocessError and `output` (with its references) is left as it was.
    """
    with tempfile.TemporaryDirectory(prefix="envrepro-probe-") as tmp:
        record = probe(request, Path(tmp))
        sources = _name_references(record, request, reference_dir(output).name)
        snap = to_snapshot(record, _model_refs(sources), preprocess_ref=sources.get("", ("", Path()))[0])
        _raise_failures(snap, output)
        return write_snapshot(snap, output, dict(sources.values()))


def _name_references(
    record: dict[str, Any], request: ProbeRequest, ref_dir: str
) -> dict[str, tuple[str, Path]]:
    """Model path (or "" for preprocessing) -> (reference name in the snapshot, the probe's file).
    Paths in the record become the ones the user gave."""
    given = {str(model.absolute()): str(model) for model in request.models}
    sources: dict[str, tuple[str, Path]] = {}
    for raw in record.get("models", []):
        raw["path"] = given.get(raw["path"], raw["path"])
        if not raw.get("error"):
            name = f"{ref_dir}/{Path(raw['path']).name}-{raw['file_sha256'][:12]}.npz"
            sources[raw["path"]] = (name, Path(raw["npz"]))
    pre = record.get("preprocessing")
    if pre is not None and request.preprocess is not None and request.raw is not None:
        pre["function"] = request.preprocess  # as given, not made absolute
        if not pre.get("error"):
            sources[""] = (f"{ref_dir}/preprocess-{_npz_digest(pre)[:12]}.npz", Path(pre["npz"]))
        record["preprocessing"] = {**pre, "raw_from": "file:" + request.raw.name}
        for raw in record.get("models", []):
            if str(raw.get("inputs_from", "")).startswith("preprocess:"):
                raw["inputs_from"] = "preprocess:" + request.preprocess
    return sources


def _model_refs(sources: Mapping[str, tuple[str, Path]]) -> dict[str, str]:
    return {path: name for path, (name, _) in sources.items() if path}


def _npz_digest(raw: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(raw["arrays_sha256"], sort_keys=True).encode()).hexdigest()


def _raise_failures(snap: Snapshot, output: Path) -> None:
    if snap.preprocessing is not None and snap.preprocessing.error is not None:
        failure = snap.preprocessing.error
        raise PreprocessError(snap.preprocessing.function, failure.kind, failure.detail, output)
    failures = [
        ModelProblem(model.path, model.error.kind, model.error.detail) for model in snap.models if model.error
    ]
    if failures:
        raise ModelError(failures, note=f" ({output} left as it was)")


def environment_of(python: Path) -> Environment:
    """The environment of a live interpreter, without writing anything (for `envrepro diff`)."""
    with tempfile.TemporaryDirectory(prefix="envrepro-probe-") as tmp:
        record = probe(ProbeRequest(python=python), Path(tmp))
    return to_snapshot(record, {}).environment
