"""The user's own code: a module (dotted name) or a .py file, imported in the running environment."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from typing import Any, Dict, Optional

try:
    from .failures import ModelProbeError
except ImportError:  # run as a script: main.py put this directory on sys.path
    from failures import ModelProbeError  # type: ignore[import-not-found,no-redef]


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
