"""Data files shipped with envrepro (tables and lists, each with its source). Read by small functions."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_json(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


def numerics_env_names() -> tuple[str, ...]:
    """The environment variables that can change a model's numbers (the only ones ever recorded)."""
    return tuple(sorted(entry["name"] for entry in load_json("numerics_env.json")["variables"]))


@cache
def difference_kinds() -> dict[str, dict[str, str]]:
    """Why each kind of environment difference matters, keyed by kind, in likelihood order."""
    return {entry["key"]: entry for entry in load_json("differences.json")["kinds"]}


def numeric_libraries() -> frozenset[str]:
    return frozenset(load_json("differences.json")["numeric_libraries"])


@dataclass(frozen=True)
class TfBuild:
    """One row of TensorFlow's tested Linux build configurations (tf_build_matrix.csv)."""

    tf_version: str
    python_min: tuple[int, int]
    python_max: tuple[int, int]
    cuda: str
    cudnn: str
    keras_major: int
    source: str

    @property
    def tf_minor(self) -> tuple[int, int]:
        return version_tuple(self.tf_version)

    def supports(self, python: tuple[int, int]) -> bool:
        return self.python_min <= python <= self.python_max


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as 2.16.1, 3.11.7 or 2.1.0+cu118."""
    parts = [int("".join(ch for ch in part if ch.isdigit()) or 0) for part in version.split(".")[:2]]
    return (parts[0], parts[1] if len(parts) > 1 else 0)


@cache
def tf_build_matrix() -> tuple[TfBuild, ...]:
    """TensorFlow -> Python/CUDA/cuDNN/Keras, oldest first. The source note is the file's first line."""
    text = resources.files(__package__).joinpath("tf_build_matrix.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return tuple(
        TfBuild(
            tf_version=row["tf_version"],
            python_min=version_tuple(row["python_min"]),
            python_max=version_tuple(row["python_max"]),
            cuda=row["cuda"],
            cudnn=row["cudnn"],
            keras_major=int(row["keras_major"]),
            source=row["source"],
        )
        for row in rows
    )


def tf_build(tf_version: str) -> TfBuild | None:
    """The tested configuration of a TensorFlow release (matched on major.minor), or None if unknown."""
    minor = version_tuple(tf_version)
    return next((row for row in tf_build_matrix() if row.tf_minor == minor), None)
