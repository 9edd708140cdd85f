"""`envrepro bisect`: which difference between training and the image breaks the model, by experiment.

parity -> groups (variants.py) -> ddmin over the groups (ddmin.py), each test one variant: the image with
some groups returned to their training value (variables at run time; distributions in a derived image,
variant_build.py) run through the same parity chain, in the same sandbox. This module only chains them and
keeps the books: every variant tried, what it changed, what it measured, how many builds it cost.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from envrepro import snapshot
from envrepro.build import BuildRequest, build_secrets
from envrepro.ddmin import ddmin
from envrepro.engine_api import ContainerEngine
from envrepro.errors import BuildBudgetError, LockError, VariantUnresolvableError
from envrepro.parity import ParityRequest, ParityRun, parity_run
from envrepro.parity_model import ParityReport
from envrepro.target import BuildSecrets
from envrepro.variant_build import Locker, build_variant, default_locker, variant_target
from envrepro.variants import Group, describe_set, env_override, groups, package_pins

log = logging.getLogger(__name__)

DEFAULT_MAX_BUILDS = 8
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BisectRequest:
    parity: ParityRequest
    max_builds: int = DEFAULT_MAX_BUILDS
    keep: bool = False


@dataclass(frozen=True)
class Trial:
    """One variant tried: which groups it returned, where it ran, what parity measured there."""

    groups: tuple[str, ...]
    changed: str
    image: str
    built: bool
    passed: bool | None  # None: not run (pins that cannot be installed together, or no builds left)
    max_abs_error: float  # inf when not measured
    note: str = ""


@dataclass(frozen=True)
class BisectResult:
    baseline: ParityReport
    groups: tuple[Group, ...]
    trials: tuple[Trial, ...] = ()
    cause: tuple[Group, ...] | None = None  # None: no set of groups restores parity
    builds: int = 0
    max_builds: int = DEFAULT_MAX_BUILDS
    complete: bool = True  # False: the build budget stopped the search
    removed: tuple[str, ...] = ()  # variant images this run built and removed

    @property
    def cause_trial(self) -> Trial | None:
        keys = {g.key for g in self.cause or ()}
        return next((t for t in self.trials if set(t.groups) == keys and t.passed), None)


def bisect(
    request: BisectRequest,
    engine: Callable[[], ContainerEngine],
    *,
    locker: Locker | None = None,
    progress: Progress | None = None,
) -> BisectResult:
    """Run parity; when it fails, find the smallest set of groups whose return restores it."""
    first = parity_run(request.parity, engine)
    if first.report.passed:
        return BisectResult(first.report, ())
    found = groups(first.training, first.image)
    lab = _Lab(request, engine(), first, locker, progress or (lambda _line: None))
    lab.say(f"parity failed (max abs {max_abs(first.report):.3g}); {len(found)} groups differ")
    try:
        cause = _search(found, lab.test)
    finally:
        removed = () if request.keep else lab.remove_built()
    return BisectResult(
        first.report,
        found,
        tuple(lab.trials),
        cause,
        lab.builds,
        request.max_builds,
        not lab.exhausted,
        removed,
    )


def _search(
    found: Sequence[Group], test: Callable[[tuple[Group, ...]], bool | None]
) -> tuple[Group, ...] | None:
    """Variables first, as they cost no build: if returning them all restores parity, the cause is there."""
    env = tuple(g for g in found if g.kind == "env")
    if env and len(env) < len(found) and test(env):
        return ddmin(env, test)
    return ddmin(tuple(found), test)


def max_abs(report: ParityReport) -> float:
    errors = [o.max_abs_error for o in (*report.outputs, *report.preprocessing)]
    return max(errors, default=0.0)


@dataclass
class _Lab:
    """Runs variants, remembers each (a set is never tried twice) and counts the builds."""

    request: BisectRequest
    engine: ContainerEngine
    first: ParityRun
    locker: Locker | None
    say: Progress
    trials: list[Trial] = field(default_factory=list)
    builds: int = 0
    exhausted: bool = False
    built: list[str] = field(default_factory=list)
    _seen: dict[frozenset[str], bool | None] = field(default_factory=dict)

    def test(self, chosen: tuple[Group, ...]) -> bool | None:
        key = frozenset(g.key for g in chosen)
        if key not in self._seen:
            trial = self._try(chosen)
            self.trials.append(trial)
            self._seen[key] = trial.passed
            self.say(_progress_line(len(self.trials), trial))
        return self._seen[key]

    def _try(self, chosen: tuple[Group, ...]) -> Trial:
        keys, changed = tuple(g.key for g in chosen), describe_set(chosen)
        try:
            image, built = self._image(chosen)
        except (BuildBudgetError, VariantUnresolvableError) as exc:
            return Trial(keys, changed, "", built=False, passed=None, max_abs_error=math.inf, note=str(exc))
        env = tuple(sorted(env_override(chosen).items()))
        report = parity_run(replace(self.request.parity, image=image, environment=env), lambda: self.engine)
        return Trial(keys, changed, image, built, report.report.passed, max_abs(report.report))

    def _image(self, chosen: tuple[Group, ...]) -> tuple[str, bool]:
        """The image to run the variant in: the image itself, or a derived one with the training pins."""
        pins = package_pins(chosen)
        image = self.first.report.image
        if not pins:
            return image, False
        if self.builds >= self.request.max_builds:
            self.exhausted = True
            raise BuildBudgetError(self.request.max_builds)
        snap = snapshot.load(self.request.parity.snapshot_path)
        target = variant_target(snap, self.first.image, image, pins)
        try:
            variant = build_variant(self.engine, image, target, self._secrets(), self._locker())
        except LockError as exc:
            raise VariantUnresolvableError(
                tuple(g.key for g in chosen if g.kind == "packages"), str(exc)
            ) from exc
        if variant.built:
            self.builds += 1
            self.built.append(variant.tag)
        return variant.tag, variant.built

    def _secrets(self) -> BuildSecrets:
        return build_secrets(BuildRequest(snapshot_path=self.request.parity.snapshot_path))

    def _locker(self) -> Locker:
        return self.locker or default_locker(self._secrets())

    def remove_built(self) -> tuple[str, ...]:
        for tag in self.built:
            self.engine.remove_image(tag)
        return tuple(self.built)


def _progress_line(number: int, trial: Trial) -> str:
    outcome = {True: "restores parity", False: "still fails", None: "not run"}[trial.passed]
    measured = f"max abs {trial.max_abs_error:.3g}" if math.isfinite(trial.max_abs_error) else trial.note
    built = ", built" if trial.built else ""
    return f"variant {number} ({', '.join(trial.groups)}{built}): {outcome}; {measured}"
