"""The probe's output from inside an image, turned into typed values (untrusted: any oddity is a
`ProbeOutputError`, a failure the probe recorded is the matching user error)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envrepro import introspect, runner
from envrepro.engine_api import ContainerEngine
from envrepro.errors import ModelError, ModelProblem, ProbeOutputError
from envrepro.reference import Arrays
from envrepro.runner import ProbeOutput
from envrepro.snapshot import Environment, ModelRecord


@dataclass(frozen=True)
class ImageRun:
    """What the probe recorded in the image: its environment, the model as loaded there, its arrays."""

    environment: Environment
    model: ModelRecord
    outputs: Arrays
    preprocessed: Arrays
    output: ProbeOutput
    timings: dict[str, float]


def image_run(output: ProbeOutput, preprocessing: bool) -> ImageRun:
    """The probe's output of a parity run, parsed: a failure recorded in the image is raised here."""
    environment, model = typed_record(output.record)
    preprocessed = _preprocessed(output) if preprocessing else {}
    timings = _timings(output.record)
    return ImageRun(environment, model, output.arrays("model-0.npz"), preprocessed, output, timings)


def typed_record(raw: Mapping[str, Any]) -> tuple[Environment, ModelRecord]:
    """The probe's record as typed values; a model that failed in the image is a ModelError."""
    models = raw.get("models") or [
        {"path": "?", "error": {"kind": "probe_failed", "detail": "no model record"}}
    ]
    try:
        failure = models[0].get("error")
        if failure:
            detail = f"{failure['detail']} (inside the image)"
            raise ModelError([ModelProblem(str(models[0]["path"]), str(failure["kind"]), detail)])
        snap = introspect.to_snapshot({"environment": raw["environment"], "models": models[:1]}, {})
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:  # ValidationError too
        raise ProbeOutputError(f"record.json is not the probe's record ({type(exc).__name__})") from exc
    return snap.environment, snap.models[0]


def _preprocessed(output: ProbeOutput) -> Arrays:
    record = output.record.get("preprocessing") or {
        "function": "?",
        "error": {"kind": "preprocess", "detail": "no record"},
    }
    failure = record.get("error")
    if failure:
        raise introspect.PreprocessError(
            record["function"], failure["kind"], f"{failure['detail']} (inside the image)"
        )
    return output.arrays("preprocess.npz")


def _timings(raw: Mapping[str, Any]) -> dict[str, float]:
    try:
        timings = (raw.get("models") or [{}])[0].get("timings") or {}
        return {str(k): float(v) for k, v in timings.items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise ProbeOutputError(f"record.json has unreadable timings ({exc})") from exc


def image_environment(engine: ContainerEngine, image: str) -> Environment:
    """The environment inside `image`, read by the snapshot probe (for `envrepro diff image:REF ...`)."""
    output = runner.run_probe(engine, image)
    try:
        raw = {"environment": output.record["environment"], "models": []}
        return introspect.to_snapshot(raw, {}).environment
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # ValidationError too
        raise ProbeOutputError(f"record.json is not the probe's record ({type(exc).__name__})") from exc
