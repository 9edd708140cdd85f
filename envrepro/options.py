"""Command-line values parsed to typed values once, where they enter (click parameter types).

Each type turns the text into the value the core takes, or raises `OptionValueError` / `ToleranceError`:
one line naming the flag and the rule, exit 2. Nothing downstream re-checks or re-parses them.
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

from envrepro import imageref
from envrepro.errors import EnvreproError, OptionValueError, ToleranceError
from envrepro.target import PLATFORM_ARCH
from envrepro.tolerance import Tolerance, checked

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY_BYTES = 6 * 1024**2  # the smallest memory limit Docker accepts


def _flag(param: click.Parameter | None) -> str:
    return param.opts[0] if param is not None and param.opts else "value"


class ToleranceValue(click.ParamType[float]):
    """A finite number >= 0 (--atol, --rtol)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, _ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return checked(value, _flag(param))
        try:
            return checked(float(value), _flag(param))
        except ValueError:
            raise ToleranceError(_flag(param), str(value)) from None


class OutputTolerance(click.ParamType[tuple[str, Tolerance]]):
    """OUTPUT=ATOL[,RTOL] (--tolerance): a name and a valid Tolerance."""

    name = "OUTPUT=ATOL[,RTOL]"

    def convert(
        self, value: Any, _param: click.Parameter | None, _ctx: click.Context | None
    ) -> tuple[str, Tolerance]:
        if isinstance(value, tuple):
            return value
        name, sep, values = str(value).partition("=")
        atol, _, rtol = values.partition(",")
        try:
            if not sep or not name:
                raise ValueError(value)
            numbers = float(atol), float(rtol) if rtol else 0.0
        except ValueError:
            raise EnvreproError(
                f"--tolerance {value!r} is not OUTPUT=ATOL[,RTOL]", hint="e.g. --tolerance logits=1e-4,1e-3"
            ) from None
        flag = f"--tolerance {name}"
        return name, Tolerance(atol=checked(numbers[0], flag), rtol=checked(numbers[1], flag))


class Seconds(click.ParamType[float]):
    """A finite number of seconds >= `minimum` (--timeout)."""

    name = "seconds"

    def __init__(self, minimum: float = 1.0) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, _ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < self.minimum:
            rule = f"a finite number of seconds >= {self.minimum:g}"
            raise OptionValueError(_flag(param), str(value), rule)
        return number


class Cpus(click.ParamType[float]):
    """A finite number of CPUs > 0 (--cpus); fractions allowed, as `docker run --cpus` takes them."""

    name = "cpus"

    def convert(self, value: Any, param: click.Parameter | None, _ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0.01:
            raise OptionValueError(_flag(param), str(value), "a number of CPUs >= 0.01 (e.g. 2 or 0.5)")
        return number


class MemorySize(click.ParamType[int]):
    """A memory size: bytes, or a number with k, m or g (--memory 4g); at least 6 MiB, never 0."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, _ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        found = _SIZE.fullmatch(str(value).strip())
        size = int(float(found.group(1)) * _UNITS[found.group(2).lower()]) if found else 0
        if size < MIN_MEMORY_BYTES:
            raise OptionValueError(
                _flag(param), str(value), "a memory size of at least 6m (e.g. 4g or 512m)",
                hint="--memory limits the container's memory; it cannot be switched off",
            )  # fmt: skip
        return size


def image_reference(text: str, flag: str) -> str:
    """`text` if it is a valid image reference, else ImageRefError naming `flag` and the rule."""
    return imageref.check_reference(text, flag)


class ImageReference(click.ParamType[str]):
    """A valid image reference: [registry/]name[:tag][@digest], name in lower case."""

    name = "NAME:TAG"

    def convert(self, value: Any, param: click.Parameter | None, _ctx: click.Context | None) -> str:
        return image_reference(str(value), _flag(param))


class Platform(click.ParamType[str]):
    """An image platform envrepro builds for (--platform): linux/amd64 or linux/arm64, as Docker spells it."""

    name = "platform"

    def convert(self, value: Any, param: click.Parameter | None, _ctx: click.Context | None) -> str:
        text = str(value)
        if text not in PLATFORM_ARCH:
            raise OptionValueError(
                _flag(param), text, "a platform envrepro builds for: " + " or ".join(PLATFORM_ARCH),
                hint="linux/amd64 for x86_64 machines, linux/arm64 for aarch64 ones (and Apple Silicon)",
            )  # fmt: skip
        return text
