"""Load a model in the running environment, fingerprint it, and run it on deterministic inputs.

Needs TensorFlow and NumPy, which every environment that holds a Keras/TF model has. Used twice: by
`envrepro snapshot --model` in the training environment (records the reference), and by `envrepro parity`
inside the image (replays the reference inputs). Both paths load and call the model the same way.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
import time
import zipfile
from typing import Any, Callable, Dict, List, Optional, Tuple

JsonDict = Dict[str, Any]
BATCH_SIZE = 256
FREE_DIM = 16  # size given to a non-batch dimension that the signature leaves open
# Keras layers that preprocess inside the model; one at the input removes the usual cause of train/serve skew.
PREPROCESSING_LAYERS = frozenset(
    [
        "Rescaling",
        "Normalization",
        "Resizing",
        "CenterCrop",
        "TextVectorization",
        "StringLookup",
        "IntegerLookup",
        "Hashing",
        "HashedCrossing",
        "Discretization",
        "CategoryEncoding",
    ]
)


class ModelProbeError(Exception):
    """A model could not be loaded or run; `kind` says why in one word the host maps to a hint."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def model_format(path: str) -> str:
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return "savedmodel"
        raise ModelProbeError("unsupported", "directory has no saved_model.pb, so it is not a SavedModel")
    if not os.path.exists(path):
        raise ModelProbeError("not_found", "no such file or directory")
    lowered = path.lower()
    if lowered.endswith(".keras"):
        return "keras"
    if lowered.endswith((".h5", ".hdf5")):
        return "h5"
    raise ModelProbeError(
        "unsupported", "unknown model format (expected .h5, .keras or a SavedModel directory)"
    )


def file_digest(path: str) -> str:
    """sha256 of a file, or of a directory tree (relative paths and contents, in sorted order)."""
    digest = hashlib.sha256()
    if os.path.isfile(path):
        _hash_file(digest, path)
        return digest.hexdigest()
    for base, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(base, name)
            digest.update(os.path.relpath(full, path).replace(os.sep, "/").encode() + b"\0")
            _hash_file(digest, full)
    return digest.hexdigest()


def _hash_file(digest: Any, path: str) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def import_user_module(spec: str, name: str) -> Any:
    """Import the user's module: a dotted name, or a .py file (loaded under `name`)."""
    if not spec.endswith(".py"):
        return importlib.import_module(spec)
    module_spec = importlib.util.spec_from_file_location(name, spec)
    if module_spec is None or module_spec.loader is None:
        raise ImportError("cannot load " + spec)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    return module


def load_custom_objects(spec: Optional[str]) -> Dict[str, Any]:
    """Import a module (dotted name or .py file) and return the classes and functions it defines."""
    if not spec:
        return {}
    try:
        module = import_user_module(spec, "envrepro_custom_objects")
    except Exception as exc:
        raise ModelProbeError("custom_objects", "cannot import custom objects %s: %s" % (spec, exc)) from exc
    return {
        name: obj
        for name, obj in vars(module).items()
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__
    }


def classify_load_error(exc: BaseException) -> ModelProbeError:
    """Map a loader exception to a kind: corrupt, custom_objects, unsafe or load_failed."""
    text = "%s: %s" % (type(exc).__name__, exc)
    lowered = text.lower()
    short = _trim(text)
    if isinstance(exc, zipfile.BadZipFile) or any(
        marker in lowered
        for marker in (
            "truncated",
            "file signature not found",
            "unable to open file",
            "unable to synchronously open",
            "not a zip file",
            "error parsing message",
            "bad magic number",
            "decodeerror",
            "corrupt",
        )
    ):
        return ModelProbeError("corrupt", "cannot be read, it is truncated or corrupt (%s)" % short)
    if any(marker in lowered for marker in ("safe_mode", "unsafe", "lambda` layer")):
        return ModelProbeError("unsafe", "needs unsafe deserialization (%s)" % short)
    if any(
        marker in lowered
        for marker in (
            "unknown layer",
            "could not locate",
            "custom_objects",
            "could not deserialize",
            "unknown object",
            "register_keras_serializable",
        )
    ):
        return ModelProbeError("custom_objects", "needs custom objects that are not available (%s)" % short)
    return ModelProbeError("load_failed", "failed to load (%s)" % short)


def _trim(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LoadedModel:
    """A uniform face over a Keras model and a SavedModel serving signature."""

    def __init__(
        self,
        fmt: str,
        inputs: List[JsonDict],
        outputs: List[JsonDict],
        call: Callable[[List[Any]], List[Any]],
        architecture: Any,
        weights: List[Tuple[str, Any]],
        saved_keras_version: str,
        input_preprocessing: Optional[List[str]] = None,
    ) -> None:
        self.format = fmt
        self.inputs = inputs
        self.outputs = outputs
        self.call = call
        self.architecture = architecture
        self.weights = weights
        self.saved_keras_version = saved_keras_version
        self.input_preprocessing = input_preprocessing  # None: cannot tell (SavedModel)


def load_model(path: str, custom_objects: Dict[str, Any], safe_mode: bool) -> LoadedModel:
    fmt = model_format(path)
    try:
        if fmt == "savedmodel":
            return _load_savedmodel(path)
        return _load_keras(path, fmt, custom_objects, safe_mode)
    except ModelProbeError:
        raise
    except Exception as exc:
        raise classify_load_error(exc) from exc


def _load_keras(path: str, fmt: str, custom_objects: Dict[str, Any], safe_mode: bool) -> LoadedModel:
    import numpy as np
    import tensorflow as tf

    kwargs: JsonDict = {"compile": False, "custom_objects": custom_objects or None}
    if fmt == "keras":
        kwargs["safe_mode"] = safe_mode
    model = tf.keras.models.load_model(path, **kwargs)
    inputs = [_spec(getattr(t, "name", "input_%d" % i), t.shape, t.dtype) for i, t in enumerate(model.inputs)]
    out_names = list(getattr(model, "output_names", None) or [])
    outputs = [
        _spec(out_names[i] if i < len(out_names) else "output_%d" % i, t.shape, t.dtype)
        for i, t in enumerate(model.outputs)
    ]

    def call(arrays: List[Any]) -> List[Any]:
        feed = arrays[0] if len(arrays) == 1 else list(arrays)
        result = model.predict(feed, batch_size=BATCH_SIZE, verbose=0)
        if isinstance(result, dict):
            return [np.asarray(result[key]) for key in sorted(result)]
        if isinstance(result, (list, tuple)):
            return [np.asarray(item) for item in result]
        return [np.asarray(result)]

    architecture = {
        "layers": [
            [type(layer).__name__, [_shape(w.shape) for w in layer.weights]] for layer in model.layers
        ],
        "inputs": [[spec["shape"][1:], spec["dtype"]] for spec in inputs],
        "outputs": [[spec["shape"][1:], spec["dtype"]] for spec in outputs],
    }
    weights = [(_weight_name(w), np.asarray(w.numpy())) for w in model.weights]
    return LoadedModel(
        fmt,
        inputs,
        outputs,
        call,
        architecture,
        weights,
        _saved_keras_version(path, fmt),
        input_preprocessing(model),
    )


def _flat_layers(model: Any) -> List[Any]:
    layers: List[Any] = []
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None) and type(layer).__name__ not in PREPROCESSING_LAYERS:
            layers.extend(_flat_layers(layer))  # a nested Sequential/Model, e.g. an augmentation block
        else:
            layers.append(layer)
    return layers


def input_preprocessing(model: Any) -> List[str]:
    """Preprocessing layers at the input: those before the first layer that computes with weights."""
    found = []
    for layer in _flat_layers(model):
        name = type(layer).__name__
        if name in PREPROCESSING_LAYERS:
            found.append(name)
        elif getattr(layer, "weights", None):
            break
    return found


def _weight_name(weight: Any) -> str:
    name = getattr(weight, "path", None) or getattr(weight, "name", "")
    return str(name).split(":")[0]


def _saved_keras_version(path: str, fmt: str) -> str:
    """The Keras version recorded in the file at save time, where the format records it."""
    try:
        if fmt == "h5":
            import h5py

            with h5py.File(path, "r") as handle:
                value = handle.attrs.get("keras_version", "")
                return value.decode() if isinstance(value, bytes) else str(value)
        if fmt == "keras":
            with zipfile.ZipFile(path) as archive:
                meta = json.loads(archive.read("metadata.json"))
                return str(meta.get("keras_version", ""))
    except Exception:  # noqa: BLE001 - informative only
        return ""
    return ""


def _load_savedmodel(path: str) -> LoadedModel:
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" not in signatures:
        raise ModelProbeError("unsupported", "SavedModel has no serving_default signature")
    fn = signatures["serving_default"]
    in_specs = fn.structured_input_signature[1]
    input_names = sorted(in_specs)
    inputs = [_spec(name, in_specs[name].shape, in_specs[name].dtype) for name in input_names]
    out_specs = fn.structured_outputs
    output_names = sorted(out_specs)
    outputs = [_spec(name, out_specs[name].shape, out_specs[name].dtype) for name in output_names]

    def call(arrays: List[Any]) -> List[Any]:
        total = len(arrays[0])
        chunks: Dict[str, List[Any]] = {name: [] for name in output_names}
        for start in range(0, total, BATCH_SIZE):
            feed = {
                name: tf.constant(arr[start : start + BATCH_SIZE]) for name, arr in zip(input_names, arrays)
            }
            result = fn(**feed)
            for name in output_names:
                chunks[name].append(result[name].numpy())
        return [np.concatenate(chunks[name]) for name in output_names]

    variables = sorted(loaded.variables, key=lambda v: (v.name, tuple(v.shape)))
    architecture = {
        "signature_inputs": [[s["name"], s["shape"][1:], s["dtype"]] for s in inputs],
        "signature_outputs": [[s["name"], s["shape"][1:], s["dtype"]] for s in outputs],
        "variables": [[_weight_name(v), _shape(v.shape)] for v in variables],
    }
    weights = [(_weight_name(v), np.asarray(v.numpy())) for v in variables]
    return LoadedModel("savedmodel", inputs, outputs, call, architecture, weights, "")


def _shape(shape: Any) -> List[Optional[int]]:
    dims = shape.as_list() if hasattr(shape, "as_list") and getattr(shape, "rank", 0) is not None else shape
    return [None if d is None else int(d) for d in (dims or [])]


def _spec(name: str, shape: Any, dtype: Any) -> JsonDict:
    return {
        "name": str(name).split(":")[0],
        "shape": _shape(shape),
        "dtype": str(getattr(dtype, "name", dtype)),
    }


def fingerprint(model: LoadedModel) -> JsonDict:
    """Digests of the architecture and of every weight tensor (values, shapes and dtypes, not names)."""
    arch = hashlib.sha256(json.dumps(model.architecture, sort_keys=True).encode()).hexdigest()
    records = []
    combined = hashlib.sha256()
    for name, array in model.weights:
        digest = array_digest(array)
        combined.update(digest.encode())
        records.append(
            {"name": name, "shape": list(array.shape), "dtype": str(array.dtype), "sha256": digest}
        )
    return {"architecture_sha256": arch, "weights_sha256": combined.hexdigest(), "weights": records}


def array_digest(array: Any) -> str:
    import numpy as np

    canonical = np.ascontiguousarray(array)
    if canonical.dtype.byteorder == ">":
        canonical = canonical.astype(canonical.dtype.newbyteorder("<"))
    digest = hashlib.sha256()
    digest.update(("%s|%s|" % (canonical.dtype.str, list(canonical.shape))).encode())
    digest.update(canonical.tobytes())
    return digest.hexdigest()


def make_inputs(specs: List[JsonDict], samples: int, seed: int) -> List[Any]:
    """Deterministic inputs from the input signature: N(0,1) floats, {0,1} integers and booleans."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays: List[Any] = []
    for spec in specs:
        dims = spec["shape"]
        shape = [samples] + [FREE_DIM if d is None else d for d in dims[1:]]
        dtype = np.dtype(spec["dtype"]) if spec["dtype"] not in ("string", "str") else None
        if dtype is None:
            raise ModelProbeError("inputs", "input %r takes strings; pass --inputs" % spec["name"])
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind in "iu":
            arrays.append(rng.integers(0, 2, size=shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        else:
            raise ModelProbeError(
                "inputs", "cannot generate %s inputs for %r; pass --inputs" % (dtype, spec["name"])
            )
    return arrays


def read_inputs(npz_path: str, specs: List[JsonDict]) -> List[Any]:
    """Inputs from an .npz: keys `input.N`, the model's input names, or a single array for one input."""
    import numpy as np

    try:
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:
        raise ModelProbeError("inputs", "cannot read inputs %s: %s" % (npz_path, _trim(str(exc)))) from exc
    chosen = []
    for index, spec in enumerate(specs):
        for key in ("input.%d" % index, spec["name"]):
            if key in arrays:
                chosen.append(arrays[key])
                break
        else:
            if len(specs) == 1 and len(arrays) == 1:
                chosen.append(next(iter(arrays.values())))
            else:
                raise ModelProbeError(
                    "inputs",
                    "%s has no array for input %r (keys: %s)"
                    % (npz_path, spec["name"], ", ".join(sorted(arrays)) or "none"),
                )
    return chosen


def probe_model(
    path: str,
    out_npz: str,
    inputs_npz: Optional[str],
    seed: int,
    samples: int,
    custom_objects: Dict[str, Any],
    safe_mode: bool,
    save_inputs: bool = True,
) -> JsonDict:
    """Load, fingerprint and run one model; write inputs and outputs to `out_npz`; return its record."""
    import numpy as np

    started = time.perf_counter()
    model = load_model(path, custom_objects, safe_mode)
    loaded = time.perf_counter()
    arrays = read_inputs(inputs_npz, model.inputs) if inputs_npz else make_inputs(model.inputs, samples, seed)
    try:
        results = model.call(arrays)
    except Exception as exc:
        raise ModelProbeError(
            "run_failed", "failed to run on the inputs (%s)" % _trim("%s: %s" % (type(exc).__name__, exc))
        ) from exc
    ran = time.perf_counter()
    payload = {"input.%d" % i: a for i, a in enumerate(arrays)} if save_inputs else {}
    payload.update({"output.%d" % i: r for i, r in enumerate(results)})
    np.savez(out_npz, **payload)
    outputs = [
        dict(spec, shape=[None] + list(r.shape[1:]), dtype=str(r.dtype))
        for spec, r in zip(model.outputs, results)
    ]
    record: JsonDict = {
        "format": model.format,
        "file_sha256": file_digest(path),
        "saved_keras_version": model.saved_keras_version,
        "inputs": model.inputs,
        "outputs": outputs,
        "samples": len(arrays[0]) if arrays else 0,
        "seed": None if inputs_npz else seed,
        "inputs_from": ("file:" + os.path.basename(inputs_npz)) if inputs_npz else "generated",
        "arrays_sha256": {key: array_digest(value) for key, value in sorted(payload.items())},
        "timings": {"load_s": loaded - started, "run_s": ran - loaded},
        "input_preprocessing": model.input_preprocessing,
    }
    record.update(fingerprint(model))
    return record
