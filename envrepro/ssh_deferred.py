"""paramiko, loaded only when an ssh:// engine is used (imported by connect.py and engine.py before `docker`).

Importing the Docker SDK imports its ssh:// transport (docker/transport/__init__.py imports sshconn, which
imports paramiko at its top), and with it invoke and cryptography: ~0.1 s of every command's start
whatever the engine. Here `sys.modules["paramiko"]` starts as a stand-in: `import paramiko` returns it,
and the first name looked up on it (`paramiko.SSHClient`, `from paramiko import SSHException`) imports the
real paramiko, which then serves that name and every later one. The SDK uses paramiko only by name inside
SSHHTTPAdapter, and connect.py only where it maps an error, so tcp://, unix:// and a context never load it,
and ssh:// works as before. Where paramiko is already imported or not installed, nothing changes.

The standard library's `importlib.util.LazyLoader` is not used: before Python 3.12 the import system's own
look at a module's `__spec__` (on `import paramiko` in the SDK) counts as a use and loads it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

DEFERRED = "paramiko"


class OnFirstUse(types.ModuleType):
    """Stands for a module in `sys.modules` until a name is looked up on it; then imports it and defers."""

    def __getattr__(self, name: str) -> Any:  # only names the stand-in lacks: all but __name__, __doc__...
        return getattr(_load(self.__name__), name)


def _load(name: str) -> types.ModuleType:
    if isinstance(sys.modules.get(name), OnFirstUse):
        del sys.modules[name]
    return importlib.import_module(name)


def defer(name: str = DEFERRED) -> None:
    """Stand in for `name` until it is used, unless it is already imported (or not installed)."""
    if name not in sys.modules and importlib.util.find_spec(name) is not None:
        sys.modules[name] = OnFirstUse(name)


defer()
