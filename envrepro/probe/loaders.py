"""Load a model with the running TensorFlow/Keras into one uniform face: specs, a call, architecture, weights.

Keras formats (.h5, .keras) are loaded with `keras.models.load_model`; before that, in safe mode, the
probe itself refuses a Lambda layer that carries Python bytecode, because Keras 2 (TF <= 2.15) and Keras 3
before 3.11.3 load such layers from an .h5 without checking `safe_mode`. With --unsafe-deserialization,
`safe_mode=False` is passed for both formats (Keras 3.11.3+ honours it for .h5 too). A SavedModel is a
TensorFlow graph: loading it runs no Python code from the file, so it loads the same in either mode.
TensorFlow and NumPy are imported only when a model is loaded.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

try:
    from . import modelconfig
    from .failures import UNSAFE_HINT, ModelProbeError, classify_load_error
    from .modelfile import model_format, read_config, saved_keras_version
except ImportError:  # run as a script: main.py put this directory on sys.path
    import modelconfig  # type: ignore[import-not-found,no-redef]
    from failures import UNSAFE_HINT, ModelProbeError, classify_load_error  # type: ignore[import-not-found,no-redef]
    from modelfile import model_format, read_config, saved_keras_version  # type: ignore[import-not-found,no-redef]

JsonDict = Dict[str, Any]
BATCH_SIZE = 256
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
    if fmt == "savedmodel":
        try:
            return _load_savedmodel(path)
        except ModelProbeError:
            raise
        except Exception as exc:
            raise classify_load_error(exc) from exc
    config = read_config(path, fmt)
    if safe_mode:
        refuse_unsafe(config)
    try:
        return _load_keras(path, fmt, custom_objects, safe_mode)
    except ModelProbeError:
        raise
    except Exception as exc:
        raise diagnose(exc, config, custom_objects) from exc


def refuse_unsafe(config: Any) -> None:
    """In safe mode, a Lambda layer holding Python bytecode is refused before Keras sees the file."""
    names = modelconfig.unsafe_lambdas(config)
    if names:
        layers = ", ".join(repr(name) for name in names)
        raise ModelProbeError(
            "unsafe",
            "needs unsafe deserialization: Lambda layer %s holds Python code; %s" % (layers, UNSAFE_HINT),
        )


def diagnose(exc: BaseException, config: Any, custom_objects: Dict[str, Any]) -> ModelProbeError:
    """The loader's error, naming the layer classes this Keras does not know when that is the cause."""
    error = classify_load_error(exc)
    if error.kind not in ("custom_objects", "load_failed") or config is None:
        return error
    missing = modelconfig.missing_classes(config, keras_knows(custom_objects))
    if not missing:
        return error
    return ModelProbeError("custom_objects", modelconfig.describe_missing(missing, sorted(custom_objects)))


def keras_knows(custom_objects: Dict[str, Any]) -> Callable[[str], bool]:
    """Whether a class name resolves here: a custom object given, a built-in layer, a registered class."""
    import tensorflow as tf

    keras = tf.keras

    def known(name: str) -> bool:
        if name in custom_objects or hasattr(keras.layers, name):
            return True
        try:
            return keras.saving.get_registered_object(name) is not None
        except Exception:  # noqa: BLE001 - a Keras without the registry knows only its own layers
            return False

    return known


def _accepts(function: Any, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True


def _keras_load(path: str, custom_objects: Dict[str, Any], safe_mode: bool) -> Any:
    import tensorflow as tf

    load = tf.keras.models.load_model
    kwargs: JsonDict = {"compile": False, "custom_objects": custom_objects or None}
    if _accepts(load, "safe_mode"):  # Keras >= 2.12; Keras 2 ignores it for .h5 (see refuse_unsafe)
        kwargs["safe_mode"] = safe_mode
    return load(path, **kwargs)


def _load_keras(path: str, fmt: str, custom_objects: Dict[str, Any], safe_mode: bool) -> LoadedModel:
    import numpy as np

    model = _keras_load(path, custom_objects, safe_mode)
    inputs, outputs = _keras_specs(model)
    architecture = {
        "layers": [
            [type(layer).__name__, [_shape(w.shape) for w in layer.weights]] for layer in model.layers
        ],
        "inputs": [[spec["shape"][1:], spec["dtype"]] for spec in inputs],
        "outputs": [[spec["shape"][1:], spec["dtype"]] for spec in outputs],
    }
    weights = [(_weight_name(w), np.asarray(w.numpy())) for w in model.weights]
    version = saved_keras_version(path, fmt)
    call = _keras_call(model)
    return LoadedModel(fmt, inputs, outputs, call, architecture, weights, version, input_preprocessing(model))


def _keras_specs(model: Any) -> Tuple[List[JsonDict], List[JsonDict]]:
    inputs = [_spec(getattr(t, "name", "input_%d" % i), t.shape, t.dtype) for i, t in enumerate(model.inputs)]
    out_names = list(getattr(model, "output_names", None) or [])
    outputs = [
        _spec(out_names[i] if i < len(out_names) else "output_%d" % i, t.shape, t.dtype)
        for i, t in enumerate(model.outputs)
    ]
    return inputs, outputs


def _keras_call(model: Any) -> Callable[[List[Any]], List[Any]]:
    import numpy as np

    def call(arrays: List[Any]) -> List[Any]:
        feed = arrays[0] if len(arrays) == 1 else list(arrays)
        result = model.predict(feed, batch_size=BATCH_SIZE, verbose=0)
        if isinstance(result, dict):
            return [np.asarray(result[key]) for key in sorted(result)]
        if isinstance(result, (list, tuple)):
            return [np.asarray(item) for item in result]
        return [np.asarray(result)]

    return call


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


def _load_savedmodel(path: str) -> LoadedModel:
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" not in signatures:
        raise ModelProbeError("unsupported", "SavedModel has no serving_default signature")
    fn = signatures["serving_default"]
    in_specs, out_specs = fn.structured_input_signature[1], fn.structured_outputs
    inputs = [_spec(name, in_specs[name].shape, in_specs[name].dtype) for name in sorted(in_specs)]
    outputs = [_spec(name, out_specs[name].shape, out_specs[name].dtype) for name in sorted(out_specs)]
    variables = sorted(loaded.variables, key=lambda v: (v.name, tuple(v.shape)))
    architecture = {
        "signature_inputs": [[s["name"], s["shape"][1:], s["dtype"]] for s in inputs],
        "signature_outputs": [[s["name"], s["shape"][1:], s["dtype"]] for s in outputs],
        "variables": [[_weight_name(v), _shape(v.shape)] for v in variables],
    }
    weights = [(_weight_name(v), np.asarray(v.numpy())) for v in variables]
    call = _signature_call(fn, sorted(in_specs), sorted(out_specs))
    return LoadedModel("savedmodel", inputs, outputs, call, architecture, weights, "")


def _signature_call(
    fn: Any, input_names: List[str], output_names: List[str]
) -> Callable[[List[Any]], List[Any]]:
    import numpy as np
    import tensorflow as tf

    def call(arrays: List[Any]) -> List[Any]:
        chunks: Dict[str, List[Any]] = {name: [] for name in output_names}
        for start in range(0, len(arrays[0]), BATCH_SIZE):
            feed = {
                name: tf.constant(arr[start : start + BATCH_SIZE]) for name, arr in zip(input_names, arrays)
            }
            result = fn(**feed)
            for name in output_names:
                chunks[name].append(result[name].numpy())
        return [np.concatenate(chunks[name]) for name in output_names]

    return call


def _shape(shape: Any) -> List[Optional[int]]:
    dims = shape.as_list() if hasattr(shape, "as_list") and getattr(shape, "rank", 0) is not None else shape
    return [None if d is None else int(d) for d in (dims or [])]


def _spec(name: str, shape: Any, dtype: Any) -> JsonDict:
    return {
        "name": str(name).split(":")[0],
        "shape": _shape(shape),
        "dtype": str(getattr(dtype, "name", dtype)),
    }
