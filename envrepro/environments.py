"""An environment by name, as `envrepro diff` takes it: a snapshot file, `image:REF` or `python:PATH`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from envrepro import introspect, snapshot
from envrepro.engine_api import ContainerEngine
from envrepro.errors import EnvironmentSpecError
from envrepro.image_run import image_environment
from envrepro.imageref import check_reference
from envrepro.snapshot import Environment

KINDS = {
    "image": "an image reference, e.g. image:myteam/model:1.0",
    "python": "an interpreter or an environment directory",
}


def load_environment(spec: str, engine: Callable[[], ContainerEngine]) -> Environment:
    """The environment `spec` names; `engine` is called only for `image:`."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in KINDS and not rest.strip():
        raise EnvironmentSpecError(spec, f"nothing after '{kind}:' (expected {KINDS[kind]})")
    if sep and kind == "image":
        return image_environment(engine(), check_reference(rest, "image:"))
    if sep and kind == "python":
        return introspect.environment_of(introspect.resolve_interpreter(rest))
    return snapshot.load(Path(spec)).environment
