"""The arrays a model is run on: generated from its input signature, or read from the user's .npz."""

from __future__ import annotations

from typing import Any, Dict, List

try:
    from .failures import ModelProbeError, trim
except ImportError:  # run as a script: main.py put this directory on sys.path
    from failures import ModelProbeError, trim  # type: ignore[import-not-found,no-redef]

JsonDict = Dict[str, Any]
FREE_DIM = 16  # size given to a non-batch dimension that the signature leaves open


def _generated(rng: Any, spec: JsonDict, shape: List[int]) -> Any:
    import numpy as np

    dtype = np.dtype(spec["dtype"]) if spec["dtype"] not in ("string", "str") else None
    if dtype is None:
        raise ModelProbeError("inputs", "input %r takes strings; pass --inputs" % spec["name"])
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    raise ModelProbeError("inputs", "cannot generate %s inputs for %r; pass --inputs" % (dtype, spec["name"]))


def make_inputs(specs: List[JsonDict], samples: int, seed: int) -> List[Any]:
    """Deterministic inputs from the input signature: N(0,1) floats, {0,1} integers and booleans."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays: List[Any] = []
    for spec in specs:
        shape = [samples] + [FREE_DIM if d is None else d for d in spec["shape"][1:]]
        arrays.append(_generated(rng, spec, shape))
    return arrays


def _load_npz(npz_path: str) -> Dict[str, Any]:
    import numpy as np

    try:
        with np.load(npz_path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception as exc:
        raise ModelProbeError("inputs", "cannot read inputs %s: %s" % (npz_path, trim(str(exc)))) from exc


def read_inputs(npz_path: str, specs: List[JsonDict]) -> List[Any]:
    """Inputs from an .npz: keys `input.N`, the model's input names, or a single array for one input."""
    arrays = _load_npz(npz_path)
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
