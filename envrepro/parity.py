"""Parity: the model in the image -> its outputs against the training side's -> explain -> report.

This module only chains the stages: `reference` (the training side), `runner` (the probe inside a
locked-down container of the image), then `parity_verdict`: `compare` (pure NumPy), `explain` (pure
causes) and the typed `ParityReport`. Only the probe (standard library + the image's own TF/NumPy) runs in
the container: envrepro is not installed there.

The container starts as early as the trust rules allow: once the snapshot is validated, the model found in
it and every flag checked (what builds the container's spec and its inputs). The rest of the training
side (reading the reference arrays and checking their digests, importing NumPy and the comparison) is done
while the image runs: its start, Python's and TensorFlow's import take seconds, and the engine's start +
wait only waits on a socket (runner.started_probe). A reference that fails its digests is still an error,
and the container is removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from envrepro import runner, snapshot
from envrepro.engine_api import ContainerEngine
from envrepro.errors import InputFileError
from envrepro.image_run import image_run
from envrepro.inbox import InFile
from envrepro.reference import (
    PreprocessRun,
    find_model,
    load_references,
    preprocess_run,
    reference_path,
)
from envrepro.runner import Limits, in_path
from envrepro.signals import deferred_signals
from envrepro.snapshot import Environment, ModelRecord
from envrepro.target import default_image_tag
from envrepro.tolerance import Tolerances

if TYPE_CHECKING:
    from envrepro.parity_model import ParityReport


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
    pre = preprocess_run(snap, request.snapshot_path, request.preprocess)
    request.tolerances.check_names(_output_names(record, pre))
    image = request.image or default_image_tag(snap.digest())
    args, inputs = probe_arguments(request, record, pre)
    env = dict(request.environment)
    with runner.started_probe(engine(), image, args, inputs, request.limits, environment=env) as running:
        # while the image runs: the numeric side imported (NumPy...), the reference arrays read and verified.
        # A signal is held during the import: raised inside the import machinery's callbacks it is lost.
        with deferred_signals():
            from envrepro import parity_verdict  # noqa: PLC0415 - see the module's docstring

        references = load_references(request.snapshot_path.parent, record, pre)
        output = running.output()
    ran = image_run(output, pre is not None)
    report = parity_verdict.build_report(request, snap, record, references, image=image, ran=ran, pre=pre)
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
