"""Load a model in the running environment, fingerprint it, and run it on deterministic inputs.

Needs TensorFlow and NumPy, which every environment that holds a Keras/TF model has. Used twice: by
`envrepro snapshot --model` in the training environment (records the reference), and by `envrepro parity`
inside the image (replays the reference inputs). Both paths load and call the model the same way.
The pieces live beside this module: failures (errors), modelfile and modelconfig (the file, read without
Keras), loaders (Keras/SavedModel), inputs, digests, usermodule.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

try:
    from .digests import array_digest, fingerprint
    from .failures import ModelProbeError, describe
    from .inputs import make_inputs, read_inputs
    from .loaders import BATCH_SIZE, LoadedModel, load_model
    from .modelfile import file_digest
    from .usermodule import load_custom_objects
except ImportError:  # run as a script: main.py put this directory on sys.path
    from digests import array_digest, fingerprint  # type: ignore[import-not-found,no-redef]
    from failures import ModelProbeError, describe  # type: ignore[import-not-found,no-redef]
    from inputs import make_inputs, read_inputs  # type: ignore[import-not-found,no-redef]
    from loaders import BATCH_SIZE, LoadedModel, load_model  # type: ignore[import-not-found,no-redef]
    from modelfile import file_digest  # type: ignore[import-not-found,no-redef]
    from usermodule import load_custom_objects  # type: ignore[import-not-found,no-redef]

JsonDict = Dict[str, Any]
__all__ = ["BATCH_SIZE", "ModelProbeError", "array_digest", "load_custom_objects", "probe_model"]


def _run(model: LoadedModel, arrays: List[Any]) -> List[Any]:
    try:
        return model.call(arrays)
    except Exception as exc:
        raise ModelProbeError("run_failed", "failed to run on the inputs (%s)" % describe(exc)) from exc


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
    results = _run(model, arrays)
    ran = time.perf_counter()
    payload = {"input.%d" % i: a for i, a in enumerate(arrays)} if save_inputs else {}
    payload.update({"output.%d" % i: r for i, r in enumerate(results)})
    np.savez(out_npz, **payload)
    record = _record(path, model, results, inputs_npz, seed)
    record.update(
        {
            "samples": len(arrays[0]) if arrays else 0,
            "arrays_sha256": {key: array_digest(value) for key, value in sorted(payload.items())},
            "timings": {"load_s": loaded - started, "run_s": ran - loaded},
        }
    )
    return record


def _record(
    path: str, model: LoadedModel, results: List[Any], inputs_npz: Optional[str], seed: int
) -> JsonDict:
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
        "seed": None if inputs_npz else seed,
        "inputs_from": ("file:" + os.path.basename(inputs_npz)) if inputs_npz else "generated",
        "input_preprocessing": model.input_preprocessing,
    }
    record.update(fingerprint(model))
    return record
