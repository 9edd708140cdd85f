"""Data files shipped with envrepro (tables and lists, each with its source). Read by small functions."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_json(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


def numerics_env_names() -> tuple[str, ...]:
    """The environment variables that can change a model's numbers (the only ones ever recorded)."""
    return tuple(sorted(entry["name"] for entry in load_json("numerics_env.json")["variables"]))


def difference_kinds() -> dict[str, dict[str, str]]:
    """Why each kind of environment difference matters, keyed by kind, in likelihood order."""
    return {entry["key"]: entry for entry in load_json("differences.json")["kinds"]}


def numeric_libraries() -> frozenset[str]:
    return frozenset(load_json("differences.json")["numeric_libraries"])
