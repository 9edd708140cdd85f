"""Bisect's groups: the differences between the training record and the image, in the units bisect moves.

Pure. Each numerics environment variable is a group of its own; TensorFlow, Keras and their pinned
companions one group; NumPy one; the CUDA/cuDNN wheels one; every other distribution its own
(envrepro/data/bisect_groups.json says which names go together, and why); the recorded preprocessing, when
its output differs in the image, one more. A group "returns" to the training value: a variable at
container run time; distributions in an image derived from the image (the group's training pins installed,
its distributions that training did not have uninstalled); preprocessing by taking the recorded training
output as what the model sees, which parity already feeds the model, so only its own comparison is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from envrepro.data import load_json, numerics_env_names

if TYPE_CHECKING:
    from envrepro.snapshot import Environment

GroupKind = Literal["env", "packages", "preprocessing"]
PREPROCESSING = "preprocessing"  # the key of the preprocessing group
LOG_ONLY = "TF_CPP_MIN_LOG_LEVEL"  # recorded, but set by envrepro itself in every probe run

DEFAULT_MAX_BUILDS = 8  # variant images one bisect may build unless --max-builds says otherwise


@dataclass(frozen=True)
class Change:
    """One value that differs: a variable or a distribution, as the image has it and as training had it."""

    name: str
    image: str | None  # None: absent in the image
    training: str | None  # None: absent in training

    def describe(self) -> str:
        return f"{self.name} {self.image or '(absent)'} → {self.training or '(absent)'}"


@dataclass(frozen=True)
class Group:
    key: str
    kind: GroupKind
    changes: tuple[Change, ...]

    def describe(self) -> str:
        return ", ".join(change.describe() for change in self.changes)


def groups(training: Environment, image: Environment) -> tuple[Group, ...]:
    """Every group that differs: environment variables first (no build), then distributions."""
    return (*env_groups(training.env, image.env), *package_groups(_versions(training), _versions(image)))


def env_groups(training: Mapping[str, str], image: Mapping[str, str]) -> tuple[Group, ...]:
    names = [name for name in numerics_env_names() if name != LOG_ONLY]
    return tuple(
        Group(name, "env", (Change(name, image.get(name), training.get(name)),))
        for name in names
        if training.get(name) != image.get(name)
    )


def package_groups(training: Mapping[str, str], image: Mapping[str, str]) -> tuple[Group, ...]:
    """Distributions whose version differs and that training had, and those only in the image that belong
    to a companion group (Keras 3's tensorboard companions...): the group's variant uninstalls them. A
    distribution only in the image and in no companion group is no group (uninstalling it alone breaks what
    needs it, and it is not imported otherwise); the installers pip, setuptools and wheel are no group."""
    by_key: dict[str, list[Change]] = {}
    companions = companion_groups()
    for name in sorted((set(training) | set(image)) - set(installers())):
        key = group_key(name)
        if training.get(name) != image.get(name) and (name in training or key in companions):
            by_key.setdefault(key, []).append(Change(name, image.get(name), training.get(name)))
    return tuple(Group(key, "packages", tuple(by_key[key])) for key in sorted(by_key, key=_group_order))


def preprocessing_group(function: str) -> Group:
    """The recorded preprocessing, whose output differs in the image, as a group of its own."""
    return Group(
        PREPROCESSING,
        "preprocessing",
        (Change(f"preprocessing {function}", "in the image", "as recorded in training"),),
    )


def installers() -> tuple[str, ...]:
    """pip, setuptools, wheel: no group, and never changed by a variant (bisect_groups.json says why)."""
    return tuple(load_json("bisect_groups.json")["installers"])


def group_key(name: str) -> str:
    """The group a distribution moves with (bisect_groups.json), else its own name."""
    for entry in load_json("bisect_groups.json")["groups"]:
        if name in entry["names"] or any(name.startswith(p) for p in entry["prefixes"]):
            return str(entry["key"])
    return name


def companion_groups() -> frozenset[str]:
    """The groups bisect_groups.json names (distributions that pin each other), by key."""
    return frozenset(str(entry["key"]) for entry in load_json("bisect_groups.json")["groups"])


def _group_order(key: str) -> tuple[int, str]:
    known = [entry["key"] for entry in load_json("bisect_groups.json")["groups"]]
    return (known.index(key), key) if key in known else (len(known), key)


def _versions(environment: Environment) -> dict[str, str]:
    return {d.key: d.version for d in environment.distributions if d.reproducible}


def env_override(chosen: Iterable[Group]) -> dict[str, str | None]:
    """The variables a variant sets at run time (None: unset, as training had it)."""
    return {c.name: c.training for g in chosen if g.kind == "env" for c in g.changes}


def package_pins(chosen: Iterable[Group]) -> dict[str, str]:
    """The training pins a variant's derived image installs."""
    return {c.name: c.training for g in chosen if g.kind == "packages" for c in g.changes if c.training}


def package_removals(chosen: Iterable[Group]) -> tuple[str, ...]:
    """The distributions a variant's derived image uninstalls: in the image, not in training."""
    return tuple(sorted(c.name for g in chosen if g.kind == "packages" for c in g.changes if not c.training))


def needs_build(chosen: Iterable[Group]) -> bool:
    return any(g.kind == "packages" for g in chosen)


def returns_preprocessing(chosen: Iterable[Group]) -> bool:
    return any(g.kind == "preprocessing" for g in chosen)


def merged(first: Group, second: Group) -> Group:
    """Two package groups that cannot be installed apart, as one."""
    return Group(f"{first.key}+{second.key}", "packages", (*first.changes, *second.changes))


def describe_set(chosen: Sequence[Group]) -> str:
    return " with ".join(group.describe() for group in chosen) or "nothing"
