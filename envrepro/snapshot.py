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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from envrepro import grammar
from envrepro.errors import InputFileError, ReferenceMismatchError, SnapshotFormatError
from envrepro.fsutil import files_sha256
from envrepro.grammar import (
    ComputeCapability,
    Count,
    DistName,
    EnvName,
    EnvValue,
    HostPath,
    Identifier,
    LongText,
    OptionalPep440,
    OptionalRelativePath,
    OptionalSha256,
    Pep440,
    PreprocessSpec,
    PythonVersion,
    RelativePath,
    Sha256,
    StrictBool,
    StrictInt,
    StrictText,
    Text,
    Timestamp,
    Token,
    Url,
    dotted_version,
)

SCHEMA_VERSION: Literal[1] = 1


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PythonInfo(Frozen):
    version: PythonVersion
    implementation: Token
    abi_tag: Token
    soabi: Token
    interpreter_tag: Token
    executable: HostPath
    prefix: HostPath
    is_virtualenv: StrictBool
    platform_tags: tuple[Token, ...]

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


class Distro(Frozen):
    id: Text
    version_id: Text
    pretty_name: Text


class Libc(Frozen):
    name: Text
    version: Text


class Container(Frozen):
    detected: StrictBool
    evidence: tuple[HostPath, ...]


class OsInfo(Frozen):
    system: Token
    distribution: Distro
    libc: Libc
    kernel: Text
    machine: Token
    container: Container


class CpuInfo(Frozen):
    model: Text
    vendor: Text
    logical_cpus: Count
    flags: tuple[Token, ...]


OriginKind = Literal["index", "editable", "local", "vcs", "url", "unknown"]


class Origin(Frozen):
    kind: OriginKind
    url: Url
    detail: Text


class Distribution(Frozen):
    name: DistName
    reproducible: StrictBool  # declared before `version`, whose rule depends on it
    reason: Text = ""
    # PEP 440 for anything an index can serve; an operating-system package's own version string
    # (Debian's `1.1build1`) is kept, as a token, only on a distribution marked not reproducible.
    version: StrictText = Field(description="a PEP 440 version; not reproducible: an OS package's version")
    installer: Text
    requested: StrictBool
    origin: Origin

    @field_validator("version")
    @classmethod
    def _version(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("reproducible", True):
            return grammar.pep440_version(value)
        return grammar.os_version(value)

    @property
    def key(self) -> str:
        return normalize_name(self.name)

    @property
    def local_label(self) -> str:
        return self.version.partition("+")[2]


class Device(Frozen):
    name: Text
    type: Token
    compute_capability: ComputeCapability | None = None
    device_name: Text = ""


class TensorFlowInfo(Frozen):
    version: OptionalPep440 = ""
    git_version: Text = ""
    keras_version: OptionalPep440 = ""
    keras_module: Token = ""
    keras_major: StrictInt | None = None
    build_info: dict[Identifier, Text] = {}
    built_with_cuda: StrictBool = False
    devices: tuple[Device, ...] = ()
    onednn_enabled: StrictBool | None = None
    import_error: LongText = ""

    @field_validator("build_info")
    @classmethod
    def _cuda_versions_are_versions(cls, build_info: dict[str, str]) -> dict[str, str]:
        for key in ("cuda_version", "cudnn_version"):
            if build_info.get(key):
                dotted_version(build_info[key])
        return build_info


class Sourced(Frozen):
    value: Pep440  # dotted numbers (535.183.01, 12.5.82, 9), or a wheel's version
    source: Text


class Gpu(Frozen):
    index: Count
    name: Text
    compute_capability: ComputeCapability | None
    source: Text


class Observation(Frozen):
    field: Token
    value: Text
    source: Text


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
    env: dict[EnvName, EnvValue]
    tensorflow: TensorFlowInfo | None
    gpu: GpuInfo

    def distribution(self, name: str) -> Distribution | None:
        key = normalize_name(name)
        return next((dist for dist in self.distributions if dist.key == key), None)


class TensorSpec(Frozen):
    name: Text
    shape: tuple[Count | None, ...]
    dtype: Token


class WeightRecord(Frozen):
    name: Text
    shape: tuple[Count, ...]
    dtype: Token
    sha256: Sha256


class Reference(Frozen):
    """Reference inputs and outputs: arrays `input.N` / `output.N` in an .npz next to the snapshot."""

    file: RelativePath
    arrays_sha256: dict[Token, Sha256]
    samples: Count
    seed: StrictInt | None
    inputs_from: Text


class ModelFailure(Frozen):
    kind: Token
    detail: LongText


class ModelRecord(Frozen):
    path: HostPath
    format: Literal["h5", "keras", "savedmodel"] | None = None
    file_sha256: OptionalSha256 = ""
    saved_keras_version: Token = ""
    architecture_sha256: OptionalSha256 = ""
    weights_sha256: OptionalSha256 = ""
    weights: tuple[WeightRecord, ...] = ()
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    reference: Reference | None = None
    error: ModelFailure | None = None
    # Keras preprocessing layers at the model's input (Rescaling, Normalization, ...); None: not recorded.
    input_preprocessing: tuple[Token, ...] | None = None


class PreprocessRecord(Frozen):
    """The user's preprocessing function, run on raw samples (`snapshot --preprocess F --raw FILE`).

    Its reference file holds `raw.N` (the raw samples) and `preprocessed.N` (what the function returned).
    """

    function: PreprocessSpec
    source_sha256: OptionalSha256 = ""
    raw_from: Text = ""
    samples: Count = 0
    outputs: tuple[TensorSpec, ...] = ()
    file: OptionalRelativePath = ""
    arrays_sha256: dict[Token, Sha256] = {}
    error: ModelFailure | None = None


# Fields added after schema 1 was published: left out of the digest (and the JSON) while unset, so that
# documents written before them keep their digest, and with it their image tag.
_LATER_SNAPSHOT_FIELDS = ("preprocessing",)
_LATER_MODEL_FIELDS = ("input_preprocessing",)


class Snapshot(Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    envrepro_version: Pep440
    created_at: Timestamp
    environment: Environment
    models: tuple[ModelRecord, ...] = ()
    preprocessing: PreprocessRecord | None = None
    # fsutil.files_sha256 of reference_files() as written; outside the digest (npz bytes vary per run)
    references_sha256: Sha256 | None = Field(default=None, exclude=True)

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


MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024  # real snapshots are tens of kilobytes


def load(path: Path) -> Snapshot:
    """Read and validate a snapshot file, with one clear error for every way it can be wrong."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SNAPSHOT_BYTES + 1)
    except FileNotFoundError as exc:
        raise InputFileError(path, "no such snapshot", hint="run `envrepro snapshot` first") from exc
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from exc
    return _check_references(parse(data, path), path)


def _check_references(snap: Snapshot, path: Path) -> Snapshot:
    """A snapshot that recorded its references' digest is read only with those very files (when present)."""
    files = {name: path.parent / name for name in snap.reference_files()}
    if snap.references_sha256 is None or not any(file.exists() for file in files.values()):
        return snap  # references not copied along: parity says which one it misses
    if files_sha256(files) != snap.references_sha256:
        raise ReferenceMismatchError(path, "sha256 differs from references_sha256; edited, or another run's")
    return snap


def parse(data: str | bytes, path: Path) -> Snapshot:
    """The Snapshot in `data`; SnapshotFormatError names the first field (a JSON pointer) and its rule."""
    document = _document(data, path)
    version = document.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        shown_version = grammar.shown(str(version)) if isinstance(version, str) else repr(version)[:40]
        raise SnapshotFormatError(
            path, f"schema_version {shown_version}, this envrepro reads {SCHEMA_VERSION}"
        )
    try:
        return Snapshot.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise SnapshotFormatError(path, f"{json_pointer(first['loc'])}: {_rule(first['msg'])}") from exc


def _document(data: str | bytes, path: Path) -> dict[str, Any]:
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotFormatError(path, f"larger than {MAX_SNAPSHOT_BYTES // 2**20} MiB")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SnapshotFormatError(path, f"not UTF-8 text (byte {exc.start})") from None
    try:
        document: Any = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise SnapshotFormatError(path, f"not JSON ({grammar.shown(str(exc), 120)})") from None
    if not isinstance(document, dict):
        raise SnapshotFormatError(path, "not a JSON object")
    return document


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"duplicate key {grammar.shown(duplicate)}")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_pointer(loc: tuple[int | str, ...]) -> str:
    """RFC 6901 pointer of a pydantic error location, each token escaped to printable ASCII."""
    tokens = [str(part) for part in loc if part != "[key]"]
    escaped = (grammar.one_line(t.replace("~", "~0").replace("/", "~1")) for t in tokens)
    pointer = "".join("/" + token for token in escaped) or "/"
    return pointer if len(pointer) <= 200 else pointer[:197] + "..."


def _rule(message: str) -> str:
    return grammar.one_line(message.removeprefix("Value error, "))
