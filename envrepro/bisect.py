"""`envrepro bisect`: which difference between training and the image breaks the model, by experiment.

parity -> groups (variants.py) -> ddmin over the groups (ddmin.py), each test one variant: the image with
some groups returned to their training value (variables at run time; preprocessing by leaving its own
comparison out, as the model already gets training's preprocessed inputs; distributions in a derived
image, variant_build.py) run through the same parity chain, in the same sandbox. This module only chains
them and keeps the books: every variant tried, what it changed, what it measured, how many builds it cost.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from envrepro import snapshot
from envrepro.build import BuildRequest, build_secrets
from envrepro.ddmin import ddmin
from envrepro.engine_api import ContainerEngine
from envrepro.errors import (
    BuildBudgetError,
    BuildFailedError,
    ContainerRunError,
    LockError,
    ModelError,
    PreprocessError,
    ProbeOutputError,
    VariantUnresolvableError,
)
from envrepro.parity import ParityRequest, ParityRun, parity_run
from envrepro.parity_model import ParityReport
from envrepro.target import BuildSecrets
from envrepro.variant_build import (
    Locker,
    VariantPlan,
    build_variant,
    default_locker,
    lock_variant,
    plan_variant,
    platform_key,
    variant_target,
)
from envrepro.variants import (
    DEFAULT_MAX_BUILDS,
    Group,
    companion_groups,
    describe_set,
    env_override,
    groups,
    merged,
    needs_build,
    package_pins,
    package_removals,
    preprocessing_group,
    returns_preprocessing,
)

log = logging.getLogger(__name__)

# What can stop one variant (not the whole search): it is reported as not run, with the reason.
_VARIANT_FAILURES = (
    BuildBudgetError,
    VariantUnresolvableError,
    BuildFailedError,
    ModelError,
    ContainerRunError,
    ProbeOutputError,
    PreprocessError,
)
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
    found = (*groups(first.training, first.image), *_preprocessing(first.report))
    lab = _Lab(request, engine(), first, locker, progress or (lambda _line: None))
    lab.say(f"parity failed (max abs {max_abs(first.report):.3g}); {len(found)} groups differ")
    try:
        found, cause = _search(found, lab)
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


def _preprocessing(report: ParityReport) -> tuple[Group, ...]:
    """The recorded preprocessing as a group, when its output differs in the image."""
    differs = any(not o.passed for o in report.preprocessing)
    return (preprocessing_group(report.preprocess_function),) if differs else ()


def _search(found: Sequence[Group], lab: _Lab) -> tuple[tuple[Group, ...], tuple[Group, ...] | None]:
    """Variables and preprocessing first, as they cost no build: if returning them all restores parity,
    the cause is there. Otherwise package groups that cannot be installed alone are merged first, then the
    prime suspect is tried (`shortlists`): when it restores parity, ddmin runs within it; else over all,
    the variants already tried not tried again."""
    env = tuple(g for g in found if not needs_build([g]))
    if env and len(env) < len(found) and lab.test(env):
        return tuple(found), ddmin(env, lab.test)
    together = merge_unresolvable(found, lab.lock_error, lab.say)
    return together, narrowed(together, lab.test)


def narrowed(
    found: Sequence[Group], test: Callable[[tuple[Group, ...]], bool | None]
) -> tuple[Group, ...] | None:
    """ddmin within the first of `shortlists` that `test` passes, else over all of `found`."""
    for shortlist in shortlists(found):
        if test(shortlist):
            return ddmin(shortlist, test)
    return ddmin(found, test)


def shortlists(found: Sequence[Group]) -> tuple[tuple[Group, ...], ...]:
    """The sets worth one build before delta debugging: the first companion group that differs (in
    bisect_groups.json's order: TensorFlow's, then NumPy, then CUDA's) alone, then with every variable and
    the preprocessing (the same variant image: no second build). A TensorFlow change is the usual cause;
    found alone it costs one build where ddmin's halving costs several (its first question, every group
    at once, is a build of its own). When it is not, the search has spent one build more. None when there
    is no such group, or it is the only package group (ddmin's first question is then the same set)."""
    packages = [g for g in found if g.kind == "packages"]
    suspect = next((g for g in packages if g.key.split("+")[0] in companion_groups()), None)
    if suspect is None or len(packages) < 2:
        return ()
    free = tuple(g for g in found if not needs_build([g]))
    return ((suspect,), (*free, suspect)) if free else ((suspect,),)


def merge_unresolvable(
    found: Sequence[Group], lock_error: Callable[[Sequence[Group]], str | None], say: Progress
) -> tuple[Group, ...]:
    """Each companion group (TensorFlow, NumPy, CUDA: the ones that pin others) whose training pins cannot
    be installed alone, merged with the other groups it needs (locks only, no build). A single
    distribution is not checked (a lock each would cost more than it saves): a variant of it that cannot
    be installed is reported as not run."""
    result = list(found)
    for group in [g for g in found if g.kind == "packages" and g.key in companion_groups()]:
        if group not in result or lock_error([group]) is None:
            continue
        others = tuple(g for g in result if g.kind == "packages" and g != group)
        needed = _needed(group, others, lock_error)
        if not needed:
            continue
        say(f"{group.key} cannot be installed without {', '.join(g.key for g in needed)}: they move together")
        joined = functools.reduce(merged, needed, group)
        result = [joined if g == group else g for g in result if g not in needed]
    return tuple(result)


def _needed(
    group: Group, others: tuple[Group, ...], lock_error: Callable[[Sequence[Group]], str | None]
) -> tuple[Group, ...]:
    """The groups the resolver names in its conflict, added until the lock resolves; if it names none,
    the fewest groups that make it resolve (ddmin over locks)."""
    chosen: list[Group] = []
    error = lock_error([group])
    while error is not None:
        named = [g for g in others if g not in chosen and _named(g, error)]
        if not named:
            fewest = ddmin(others, lambda more: lock_error([group, *more]) is None)
            return fewest or ()
        chosen += named
        error = lock_error([group, *chosen])
    return tuple(chosen)


def _named(group: Group, message: str) -> bool:
    return any(re.search(rf"(?<![\w.-]){re.escape(c.name)}(?![\w-])", message) for c in group.changes)


def max_abs(report: ParityReport, *, preprocessing: bool = True) -> float:
    """The largest max abs error of the model's outputs and (unless left out) the preprocessing's."""
    errors = [o.max_abs_error for o in (*report.outputs, *(report.preprocessing if preprocessing else ()))]
    return max(errors, default=0.0)


def _measured(report: ParityReport, chosen: Sequence[Group]) -> tuple[bool, float]:
    """Whether a variant passes, and its error. With preprocessing returned, the model sees the training
    preprocessing's output (parity feeds it the recorded inputs): only the preprocessing's own comparison
    is left out."""
    if not returns_preprocessing(chosen):
        return report.passed, max_abs(report)
    passed = not report.model_mismatch and all(o.passed for o in report.outputs)
    return passed, max_abs(report, preprocessing=False)


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
        image, built = "", False
        try:
            image, built = self._image(chosen)
            env = tuple(sorted(env_override(chosen).items()))
            run = parity_run(replace(self.request.parity, image=image, environment=env), lambda: self.engine)
        except _VARIANT_FAILURES as exc:  # this variant could not be measured; the search goes on
            return Trial(keys, changed, image, built, passed=None, max_abs_error=math.inf, note=str(exc))
        return Trial(keys, changed, image, built, *_measured(run.report, chosen))

    def _image(self, chosen: tuple[Group, ...]) -> tuple[str, bool]:
        """The image to run the variant in: the image itself, or a derived one with the training pins."""
        image = self.first.report.image
        if not needs_build(chosen):
            return image, False
        if self.builds >= self.request.max_builds:
            self.exhausted = True
            raise BuildBudgetError(self.request.max_builds)
        image_id, plan = self._lock(chosen)
        try:
            variant = build_variant(self.engine, image, image_id, plan, self._secrets())
        except BuildFailedError:
            self.builds += 1  # spent, though it failed
            raise
        if variant.built:
            self.builds += 1
            self.built.append(variant.tag)
        return variant.tag, variant.built

    def _lock(self, chosen: Sequence[Group]) -> tuple[str, VariantPlan]:
        """The image's ID and what the variant changes, checked by a full lock of the image's pins with
        the training pins of `chosen` (VariantUnresolvableError: they cannot be installed together)."""
        snap = snapshot.load(self.request.parity.snapshot_path)
        image, pins, removed = self.first.report.image, package_pins(chosen), package_removals(chosen)
        target = variant_target(snap, self.first.image, image, pins, removed)
        versions = {d.key: d.version for d in self.first.image.distributions}
        try:
            image_id, lock = lock_variant(self.engine, image, target, self._locker())
            return image_id, plan_variant(lock, pins, removed, versions, platform_key(target))
        except LockError as exc:
            keys = tuple(g.key for g in chosen if g.kind == "packages")
            raise VariantUnresolvableError(keys, str(exc)) from exc

    def lock_error(self, chosen: Sequence[Group]) -> str | None:
        """Why the training pins of these groups do not install next to the image's others (None: they
        do). A lock, no build; kept in the cache for the variant's build."""
        try:
            self._lock(chosen)
        except VariantUnresolvableError as exc:
            log.info("%s", exc)
            return exc.detail
        return None

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
