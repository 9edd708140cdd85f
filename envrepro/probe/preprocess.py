"""Run the user's preprocessing function on raw samples, in the running environment.

Used twice, like modelprobe: by `envrepro snapshot --preprocess` in the training environment (records the
reference) and by `envrepro parity` inside the image (replays the same raw samples). The function is
named `MODULE:FUNCTION` (a module importable here) or `FILE.py:FUNCTION`; it is called with the raw
arrays as positional arguments (raw.0, raw.1, ...) and returns an array, a tuple/list of arrays, or a
dict of arrays (sorted by key). Standard library at import; NumPy is imported when it runs.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

try:
    from .digests import array_digest
    from .failures import ModelProbeError, trim
    from .usermodule import import_user_module
except ImportError:  # run as a script: main.py put this directory on sys.path
    from digests import array_digest  # type: ignore[import-not-found,no-redef]
    from failures import ModelProbeError, trim  # type: ignore[import-not-found,no-redef]
    from usermodule import import_user_module  # type: ignore[import-not-found,no-redef]

JsonDict = Dict[str, Any]


def split_spec(spec: str) -> Tuple[str, str]:
    """`module:function` or `path/file.py:function` -> (module or file, function)."""
    module, sep, function = spec.rpartition(":")
    if not sep or not module or not function.isidentifier():
        raise ModelProbeError("preprocess", "%r is not MODULE:FUNCTION or FILE.py:FUNCTION" % spec)
    return module, function


def load_function(spec: str) -> Tuple[Callable[..., Any], str]:
    """The function, and the sha256 of the file that defines it ("" when it has no source file)."""
    module_name, function = split_spec(spec)
    try:
        module = import_user_module(module_name, "envrepro_preprocess")
    except Exception as exc:
        detail = "cannot import %s: %s" % (module_name, trim("%s: %s" % (type(exc).__name__, exc)))
        raise ModelProbeError("preprocess", detail) from exc
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ModelProbeError("preprocess", "%s defines no function %r" % (module_name, function))
    return fn, _source_digest(module)


def _source_digest(module: Any) -> str:
    try:
        path = inspect.getsourcefile(module)
    except TypeError:
        return ""
    if not path or not os.path.isfile(path):
        return ""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def read_raw(npz_path: str) -> List[Any]:
    """Raw samples from an .npz: keys raw.0, raw.1, ... or a single array under any key."""
    import numpy as np

    try:
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:
        raise ModelProbeError("raw", "cannot read raw samples %s: %s" % (npz_path, trim(str(exc)))) from exc
    numbered = []  # type: List[Any]
    while "raw.%d" % len(numbered) in arrays:
        numbered.append(arrays["raw.%d" % len(numbered)])
    if numbered:
        return numbered  # other keys (a reference's preprocessed.N) are not arguments
    if len(arrays) == 1:
        return list(arrays.values())
    raise ModelProbeError(
        "raw",
        "%s must hold raw.0, raw.1, ... or a single array (keys: %s)"
        % (npz_path, ", ".join(sorted(arrays)) or "none"),
    )


def _as_arrays(result: Any) -> List[Tuple[str, Any]]:
    import numpy as np

    if isinstance(result, dict):
        return [(str(key), np.asarray(result[key])) for key in sorted(result)]
    if isinstance(result, (list, tuple)):
        return [("preprocessed.%d" % i, np.asarray(item)) for i, item in enumerate(result)]
    return [("preprocessed.0", np.asarray(result))]


def run_preprocess(spec: str, raw_npz: str, out_npz: str, save_raw: bool = True) -> JsonDict:
    """Call the function on the raw samples; write raw.N (optional) and preprocessed.N to `out_npz`."""
    import numpy as np

    fn, source_sha256 = load_function(spec)
    raw = read_raw(raw_npz)
    try:
        named = _as_arrays(fn(*raw))
    except Exception as exc:
        detail = "%s failed on the raw samples: %s" % (spec, trim("%s: %s" % (type(exc).__name__, exc)))
        raise ModelProbeError("preprocess", detail) from exc
    for name, array in named:
        if array.dtype.kind not in "biufc":
            raise ModelProbeError(
                "preprocess",
                "%s returned %s for %r; it must return numeric arrays" % (spec, array.dtype, name),
            )
    payload = {"raw.%d" % i: a for i, a in enumerate(raw)} if save_raw else {}
    payload.update({"preprocessed.%d" % i: a for i, (_, a) in enumerate(named)})
    np.savez(out_npz, **payload)
    return {
        "function": spec,
        "source_sha256": source_sha256,
        "samples": len(raw[0]) if raw and raw[0].ndim else 0,
        "outputs": [
            {"name": name, "shape": [None] + list(a.shape[1:]), "dtype": str(a.dtype)} for name, a in named
        ],
        "arrays_sha256": {key: array_digest(value) for key, value in sorted(payload.items())},
    }


def as_model_inputs(out_npz: str, inputs_npz: str) -> Optional[str]:
    """Write the preprocessed arrays as `input.N` so models are recorded on what preprocessing produced."""
    import numpy as np

    with np.load(out_npz, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key.startswith("preprocessed.")}
    np.savez(inputs_npz, **{"input." + key.split(".", 1)[1]: value for key, value in arrays.items()})
    return inputs_npz
