"""The Snapshot: a typed, schema-versioned record of one environment (and its models' references).

The JSON document is validated on load. Its JSON Schema is `Snapshot.model_json_schema()`
(`envrepro schema snapshot` prints it). Everything in it is sorted, so the same environment gives the
same document apart from `created_at`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envrepro.errors import InputFileError, ReferenceMismatchError, SnapshotFormatError
from envrepro.fsutil import files_sha256

SCHEMA_VERSION: Literal[1] = 1


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PythonInfo(Frozen):
    version: str
    implementation: str
    abi_tag: str
    soabi: str
    interpreter_tag: str
    executable: str
    prefix: str
    is_virtualenv: bool
    platform_tags: tuple[str, ...]

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


class Distro(Frozen):
    id: str
    version_id: str
    pretty_name: str


class Libc(Frozen):
    name: str
    version: str


class Container(Frozen):
    detected: bool
    evidence: tuple[str, ...]


class OsInfo(Frozen):
    system: str
    distribution: Distro
    libc: Libc
    kernel: str
    machine: str
    container: Container


class CpuInfo(Frozen):
    model: str
    vendor: str
    logical_cpus: int
    flags: tuple[str, ...]


OriginKind = Literal["index", "editable", "local", "vcs", "url", "unknown"]


class Origin(Frozen):
    kind: OriginKind
    url: str
    detail: str


class Distribution(Frozen):
    name: str
    version: str
    installer: str
    requested: bool
    origin: Origin
    reproducible: bool
    reason: str = ""

    @property
    def key(self) -> str:
        return normalize_name(self.name)

    @property
    def local_label(self) -> str:
        return self.version.partition("+")[2]


class Device(Frozen):
    name: str
    type: str
    compute_capability: str | None = None
    device_name: str = ""


class TensorFlowInfo(Frozen):
    version: str = ""
    git_version: str = ""
    keras_version: str = ""
    keras_module: str = ""
    keras_major: int | None = None
    build_info: dict[str, str] = {}
    built_with_cuda: bool = False
    devices: tuple[Device, ...] = ()
    onednn_enabled: bool | None = None
    import_error: str = ""


class Sourced(Frozen):
    value: str
    source: str


class Gpu(Frozen):
    index: int
    name: str
    compute_capability: str | None
    source: str


class Observation(Frozen):
    field: str
    value: str
    source: str


class GpuInfo(Frozen):
    driver: Sourced | None
    cuda_runtime: Sourced | None
    cudnn: Sourced | None
    gpus: tuple[Gpu, ...]
    observations: tuple[Observation, ...]


class Environment(Frozen):
    python: PythonInfo
    os: OsInfo
    cpu: CpuInfo
    distributions: tuple[Distribution, ...]
    env: dict[str, str]
    tensorflow: TensorFlowInfo | None
    gpu: GpuInfo

    def distribution(self, name: str) -> Distribution | None:
        key = normalize_name(name)
        return next((dist for dist in self.distributions if dist.key == key), None)


class TensorSpec(Frozen):
    name: str
    shape: tuple[int | None, ...]
    dtype: str


class WeightRecord(Frozen):
    name: str
    shape: tuple[int, ...]
    dtype: str
    sha256: str


class Reference(Frozen):
    """Reference inputs and outputs: arrays `input.N` / `output.N` in an .npz next to the snapshot."""

    file: str
    arrays_sha256: dict[str, str]
    samples: int
    seed: int | None
    inputs_from: str


class ModelFailure(Frozen):
    kind: str
    detail: str


class ModelRecord(Frozen):
    path: str
    format: Literal["h5", "keras", "savedmodel"] | None = None
    file_sha256: str = ""
    saved_keras_version: str = ""
    architecture_sha256: str = ""
    weights_sha256: str = ""
    weights: tuple[WeightRecord, ...] = ()
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    reference: Reference | None = None
    error: ModelFailure | None = None
    # Keras preprocessing layers at the model's input (Rescaling, Normalization, ...); None: not recorded.
    input_preprocessing: tuple[str, ...] | None = None


class PreprocessRecord(Frozen):
    """The user's preprocessing function, run on raw samples (`snapshot --preprocess F --raw FILE`).

    Its reference file holds `raw.N` (the raw samples) and `preprocessed.N` (what the function returned).
    """

    function: str
    source_sha256: str = ""
    raw_from: str = ""
    samples: int = 0
    outputs: tuple[TensorSpec, ...] = ()
    file: str = ""
    arrays_sha256: dict[str, str] = {}
    error: ModelFailure | None = None


# Fields added after schema 1 was published: left out of the digest (and the JSON) while unset, so that
# documents written before them keep their digest, and with it their image tag.
_LATER_SNAPSHOT_FIELDS = ("preprocessing",)
_LATER_MODEL_FIELDS = ("input_preprocessing",)


class Snapshot(Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    envrepro_version: str
    created_at: str
    environment: Environment
    models: tuple[ModelRecord, ...] = ()
    preprocessing: PreprocessRecord | None = None
    # fsutil.files_sha256 of reference_files() as written; outside the digest (npz bytes vary per run)
    references_sha256: str | None = Field(default=None, exclude=True)

    def digest(self) -> str:
        """sha256 of the document without its timestamp: equal for equal environments and models."""
        payload = self._dump()
        for key in ("created_at", "envrepro_version"):
            del payload[key]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> str:
        payload = self._dump()
        if self.references_sha256 is not None:
            payload["references_sha256"] = self.references_sha256
        return json.dumps(payload, indent=2, sort_keys=True) + "\n"

    def _dump(self) -> dict[str, Any]:
        payload = self.model_dump(mode="json")
        _drop_unset(payload, _LATER_SNAPSHOT_FIELDS)
        for model in payload["models"]:
            _drop_unset(model, _LATER_MODEL_FIELDS)
        return payload

    def reference_files(self) -> tuple[str, ...]:
        """The reference files, relative to the document's directory."""
        files = [m.reference.file for m in self.models if m.reference is not None]
        if self.preprocessing is not None and self.preprocessing.file:
            files.append(self.preprocessing.file)
        return tuple(files)


def _drop_unset(payload: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if payload.get(key) is None:
            payload.pop(key, None)


def normalize_name(name: str) -> str:
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part)


def load(path: Path) -> Snapshot:
    """Read and validate a snapshot file, with one clear error for every way it can be wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputFileError(path, "no such snapshot", hint="run `envrepro snapshot` first") from exc
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from exc
    return _check_references(parse(text, path), path)


def _check_references(snap: Snapshot, path: Path) -> Snapshot:
    """A snapshot that recorded its references' digest is read only with those very files (when present)."""
    files = {name: path.parent / name for name in snap.reference_files()}
    if snap.references_sha256 is None or not any(file.exists() for file in files.values()):
        return snap  # references not copied along: parity says which one it misses
    if files_sha256(files) != snap.references_sha256:
        raise ReferenceMismatchError(path, "sha256 differs from references_sha256; edited, or another run's")
    return snap


def parse(text: str, path: Path) -> Snapshot:
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise SnapshotFormatError(path, f"not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SnapshotFormatError(path, "not a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SnapshotFormatError(path, f"schema_version {version!r}, this envrepro reads {SCHEMA_VERSION}")
    try:
        return Snapshot.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SnapshotFormatError(path, f"{where}: {first['msg']}") from exc
