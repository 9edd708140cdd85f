"""TensorFlow and Keras facts. Imports TensorFlow only when it is installed, and only here."""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Dict, List, Optional

JsonDict = Dict[str, Any]


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def collect_tensorflow() -> Optional[JsonDict]:
    """Versions, which Keras tf.keras resolves to, build info, devices, oneDNN state; None without TF."""
    if not tensorflow_installed():
        return None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except Exception as exc:  # noqa: BLE001 - a broken TF install is a fact to record, not a crash
        return {"import_error": "%s: %s" % (type(exc).__name__, exc)}
    keras_module, keras_version = _tf_keras()
    return {
        "version": tf.__version__,
        "git_version": getattr(tf.version, "GIT_VERSION", ""),
        "keras_version": keras_version,
        "keras_module": keras_module,
        "keras_major": _major(keras_version),
        "build_info": _build_info(tf),
        "built_with_cuda": bool(tf.test.is_built_with_cuda()),
        "devices": _devices(tf),
        "onednn_enabled": _onednn_enabled(),
        "import_error": "",
    }


def _tf_keras() -> "tuple[str, str]":
    """Which Keras `tf.keras` resolves to (keras 3, keras 2 or tf_keras) and its version."""
    import tensorflow as tf

    try:
        model_cls = tf.keras.Model
    except Exception:  # noqa: BLE001 - tf.keras can fail to resolve (missing tf-keras)
        return "", ""
    module = getattr(model_cls, "__module__", "") or ""
    top = module.split(".")[0]
    version = ""
    try:
        version = getattr(__import__(top), "__version__", "") or ""
    except Exception:  # noqa: BLE001
        version = getattr(tf.keras, "__version__", "") or ""
    return top, version


def _major(version: str) -> Optional[int]:
    head = version.split(".", maxsplit=1)[0]
    return int(head) if head.isdigit() else None


def _build_info(tf: Any) -> Dict[str, str]:
    try:
        info = tf.sysconfig.get_build_info()
    except Exception:  # noqa: BLE001 - old TF versions lack it
        return {}
    return {str(key): str(value) for key, value in sorted(info.items())}


def _devices(tf: Any) -> List[JsonDict]:
    devices = []
    for device in tf.config.list_physical_devices():
        entry: JsonDict = {"name": device.name, "type": device.device_type, "compute_capability": None}
        if device.device_type == "GPU":
            try:
                details = tf.config.experimental.get_device_details(device)
                capability = details.get("compute_capability")
                if capability:
                    entry["compute_capability"] = "%d.%d" % tuple(capability)
                entry["device_name"] = details.get("device_name", "")
            except Exception:  # noqa: BLE001
                pass
        devices.append(entry)
    return sorted(devices, key=lambda item: item["name"])


def _onednn_enabled() -> Optional[bool]:
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # noqa: BLE001 - private API; unknown is honest
        return None
