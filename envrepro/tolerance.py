"""Tolerances: one value for the whole comparison, validated where it is made.

`Tolerances` holds the user's default atol/rtol (None: by dtype) and per-output overrides. Every number
is finite and >= 0, or the value cannot be made (`ToleranceError`, exit 2, naming the flag). A NaN
tolerance would make every comparison true; a negative one would fail identical outputs.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from envrepro.errors import ToleranceError, UnknownOutputError


def checked(value: float, flag: str) -> float:
    """`value` if it is a finite number >= 0, else ToleranceError naming `flag`."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ToleranceError(flag, str(value))
    return float(value)


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float

    def __post_init__(self) -> None:
        checked(self.atol, "atol")
        checked(self.rtol, "rtol")


# Defaults per dtype, justified in docs/parity.md: float32 leaves ~2 orders of magnitude above the
# reordering noise seen between environments (1e-8..1e-7) and stays far below real bugs (>= 1e-3).
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float16": Tolerance(atol=1e-3, rtol=1e-2),
    "bfloat16": Tolerance(atol=1e-2, rtol=1e-2),
    "float32": Tolerance(atol=1e-5, rtol=1e-4),
    "float64": Tolerance(atol=1e-10, rtol=1e-8),
}
EXACT = Tolerance(atol=0.0, rtol=0.0)


def default_tolerance(dtype: str) -> Tolerance:
    return DEFAULT_TOLERANCES.get(dtype, EXACT)


@dataclass(frozen=True)
class Tolerances:
    """The user's tolerances: default atol/rtol for every output (None: by dtype), and per-output ones."""

    atol: float | None = None
    rtol: float | None = None
    per_output: Mapping[str, Tolerance] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for flag, value in (("--atol", self.atol), ("--rtol", self.rtol)):
            if value is not None:
                checked(value, flag)

    def for_output(self, name: str, dtype: str) -> Tolerance:
        if name in self.per_output:
            return self.per_output[name]
        default = default_tolerance(dtype)
        return Tolerance(
            atol=default.atol if self.atol is None else self.atol,
            rtol=default.rtol if self.rtol is None else self.rtol,
        )

    def check_names(self, known: Collection[str]) -> None:
        """UnknownOutputError for an override that names no output of the model (or its preprocessing)."""
        for name in sorted(self.per_output):
            if name not in known:
                raise UnknownOutputError(name, sorted(known))
