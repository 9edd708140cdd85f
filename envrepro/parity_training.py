"""Parity's training side: the snapshot validated, the model found in it, the preprocessing it recorded,
the tolerances' names checked against its outputs, and what the probe gets (its arguments and files).

parity.py imports this module once the image's container has started (with --image): the snapshot's
validation (pydantic) is not on the way to the container's start, and nothing of the snapshot reaches the
container before it is validated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from envrepro import snapshot
from envrepro.errors import InputFileError
from envrepro.inbox import InFile
from envrepro.reference import (
    PreprocessRun,
    References,
    find_model,
    load_references,
    preprocess_run,
    reference_path,
)
from envrepro.runner import in_path
from envrepro.snapshot import ModelRecord, Snapshot

if TYPE_CHECKING:
    from envrepro.parity import ParityRequest


@dataclass(frozen=True)
class TrainingSide:
    """The validated snapshot, the model's record in it and the preprocessing run (None: none recorded)."""

    snap: Snapshot
    record: ModelRecord
    pre: PreprocessRun | None

    def references(self, snapshot_path: Path) -> References:
        """The reference arrays, read and checked against their digests."""
        return load_references(snapshot_path.parent, self.record, self.pre)

    def probe_arguments(self, request: ParityRequest) -> tuple[list[str], list[InFile]]:
        """The probe's arguments and the files it needs, sent to /envrepro/in/ (read-only there)."""
        model = InFile(request.model.resolve(), f"model/{request.model.name}")
        ref = InFile(reference_path(request.snapshot_path.parent, self.record).resolve(), "reference.npz")
        inputs = [model, ref]
        args = [
            *("--model", in_path(model.target), "--model-name", str(request.model)),
            *("--inputs", in_path(ref.target), "--outputs-only"),
        ]
        if request.custom_objects:
            args += ["--custom-objects", _custom_objects(request.custom_objects, inputs)]
        if request.unsafe_deserialization:
            args.append("--unsafe-deserialization")
        if self.pre is not None:
            inputs.append(InFile(self.pre.reference_path.resolve(), "preprocess.npz"))
            args += ["--preprocess", _preprocess(self.pre.spec, inputs), "--raw", in_path("preprocess.npz")]
        return args, inputs


def read(request: ParityRequest) -> TrainingSide:
    """The training side of `request`; a bad snapshot, model or tolerance name is an error here."""
    snap = snapshot.load(request.snapshot_path)
    record = find_model(snap, request.model, request.snapshot_path)
    pre = preprocess_run(snap, request.snapshot_path, request.preprocess)
    request.tolerances.check_names(_output_names(record, pre))
    return TrainingSide(snap, record, pre)


def _output_names(record: ModelRecord, pre: PreprocessRun | None) -> list[str]:
    return [spec.name for spec in record.outputs] + ([s.name for s in pre.record.outputs] if pre else [])


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
