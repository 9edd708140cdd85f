"""Content digests of arrays and of a loaded model (architecture and weights). NumPy is imported lazily."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict

JsonDict = Dict[str, Any]


def array_digest(array: Any) -> str:
    """sha256 of an array's dtype, shape and little-endian bytes."""
    import numpy as np

    canonical = np.ascontiguousarray(array)
    if canonical.dtype.byteorder == ">":
        canonical = canonical.astype(canonical.dtype.newbyteorder("<"))
    digest = hashlib.sha256()
    digest.update(("%s|%s|" % (canonical.dtype.str, list(canonical.shape))).encode())
    digest.update(canonical.tobytes())
    return digest.hexdigest()


def fingerprint(model: Any) -> JsonDict:
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
