"""Delta debugging (Zeller and Hildebrandt, "Simplifying and Isolating Failure-Inducing Input", TSE 2002).

Pure: `ddmin(items, test)` finds a 1-minimal subset of `items` for which `test` holds, asking `test` about
subsets only. Here `test(subset)` is "returning these groups to their training value restores parity",
but nothing in this module knows that. `test` may return None for a subset it could not try (Zeller's
"unresolved" outcome, e.g. pins that cannot be installed together): such a subset counts as not passing.
Each subset is asked at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def ddmin(items: Sequence[T], test: Callable[[tuple[T, ...]], bool | None]) -> tuple[T, ...] | None:
    """The smallest subset (1-minimal: removing any one item breaks it) for which `test` is True.

    None when `test(items)` itself is not True: nothing among `items` explains the failure."""
    ask = _memo(test)
    current = tuple(items)
    if not ask(current):
        return None
    granularity = 2
    while len(current) >= 2:
        reduced = _reduce(current, granularity, ask)
        if reduced is not None:
            current, granularity = reduced
        elif granularity >= len(current):
            break
        else:
            granularity = min(2 * granularity, len(current))
    return current


def _reduce(
    current: tuple[T, ...], granularity: int, ask: Callable[[tuple[T, ...]], bool]
) -> tuple[tuple[T, ...], int] | None:
    """A chunk that passes on its own (then granularity 2), else a complement that does (n - 1)."""
    chunks = split(current, granularity)
    for chunk in chunks:
        if ask(chunk):
            return chunk, 2
    if granularity == 2:
        return None  # the complements of two halves are the halves themselves
    for index in range(len(chunks)):
        complement = tuple(item for other, c in enumerate(chunks) if other != index for item in c)
        if ask(complement):
            return complement, max(granularity - 1, 2)
    return None


def split(items: tuple[T, ...], parts: int) -> list[tuple[T, ...]]:
    """`items` in `parts` contiguous chunks whose sizes differ by at most one."""
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        chunks.append(items[start:end])
        start = end
    return [chunk for chunk in chunks if chunk]


def _memo(test: Callable[[tuple[T, ...]], bool | None]) -> Callable[[tuple[T, ...]], bool]:
    seen: dict[frozenset[T], bool] = {}

    def ask(subset: tuple[T, ...]) -> bool:
        key = frozenset(subset)
        if key not in seen:
            seen[key] = test(subset) is True
        return seen[key]

    return ask
