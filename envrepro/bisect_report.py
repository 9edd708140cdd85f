"""Bisect's report: a typed, schema-versioned document (`envrepro schema bisect`), and its terminal table
(80 columns, nothing cut) and Markdown. Renderers only format; `bisect.py` decides."""

from __future__ import annotations

import json
import math

from rich import box
from rich.console import Group as Stack
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from envrepro.bisect import BisectResult, Trial, max_abs
from envrepro.parity_model import Measure, ModelCheck, _Frozen
from envrepro.variants import describe_set


class GroupEntry(_Frozen):
    key: str
    kind: str  # env: set at run time; preprocessing: the recorded output; packages: a derived image
    changed: str  # "name image-value → training-value, ..."


class TrialEntry(_Frozen):
    groups: tuple[str, ...]
    changed: str
    image: str
    built: bool
    outcome: str  # pass, fail, not-run
    max_abs_error: Measure
    note: str


class BisectReport(ModelCheck):
    schema_version: int = 1
    verdict: str  # pass (parity passed, nothing to bisect), cause, no-cause, incomplete
    baseline_max_abs_error: Measure
    groups: tuple[GroupEntry, ...]
    trials: tuple[TrialEntry, ...]
    cause: tuple[str, ...] | None
    builds: int
    max_builds: int
    removed_images: tuple[str, ...]


def to_report(result: BisectResult) -> BisectReport:
    base = result.baseline
    return BisectReport(
        verdict=verdict(result),
        summary=summary(result),
        model=base.model,
        image=base.image,
        snapshot=base.snapshot,
        baseline_max_abs_error=max_abs(base),
        groups=tuple(GroupEntry(key=g.key, kind=g.kind, changed=g.describe()) for g in result.groups),
        trials=tuple(_trial(t) for t in result.trials),
        cause=tuple(g.key for g in result.cause) if result.cause is not None else None,
        builds=result.builds,
        max_builds=result.max_builds,
        removed_images=result.removed,
    )


def _trial(trial: Trial) -> TrialEntry:
    outcome = {True: "pass", False: "fail", None: "not-run"}[trial.passed]
    return TrialEntry(
        groups=trial.groups, changed=trial.changed, image=trial.image, built=trial.built,
        outcome=outcome, max_abs_error=trial.max_abs_error, note=trial.note,
    )  # fmt: skip


def verdict(result: BisectResult) -> str:
    if result.baseline.passed:
        return "pass"
    if result.cause is not None:
        return "cause"
    return "no-cause" if result.complete else "incomplete"


def summary(result: BisectResult) -> str:
    """The verdict line: what restores parity, measured, or why nothing was found."""
    before = _number(max_abs(result.baseline))
    if result.baseline.passed:
        return f"Parity passes (max abs {before}): nothing to bisect, no image built."
    if result.cause is not None:
        trial = result.cause_trial
        after = _number(trial.max_abs_error) if trial else "?"
        return f"Returning {describe_set(result.cause)} restores parity (max abs {before} → {after})"
    if not result.groups:
        return f"Parity fails (max abs {before}) and nothing bisect can move differs (OS, CPU or the model)."
    if not result.complete:
        return (f"No cause found within --max-builds {result.max_builds} ({result.builds} builds): "
                f"parity still fails (max abs {before}).")  # fmt: skip
    return (f"Returning all {len(result.groups)} differing groups does not restore parity (max abs "
            f"{before}): the cause is outside them (OS, CPU, the model itself).")  # fmt: skip


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "unmeasurable"
    return "0" if value == 0 else f"{value:.2g}"


def bisect_json(report: BisectReport) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def bisect_table(report: BisectReport) -> RenderableType:
    """Every variant tried, one row each, in 80 columns: what it changed wraps between words."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("returned to training", overflow="fold", ratio=1)
    table.add_column("build", no_wrap=True)
    table.add_column("max abs", justify="right", no_wrap=True)
    table.add_column("parity", no_wrap=True)
    for number, trial in enumerate(report.trials, 1):
        measured = _number(trial.max_abs_error) if trial.outcome != "not-run" else "—"
        changed = Text(trial.changed + (f" ({trial.note})" if trial.note else ""))  # never rich markup
        table.add_row(str(number), changed, "yes" if trial.built else "no", measured, trial.outcome)
    title = Text(f"bisect — {report.model} in {report.image}: {len(report.groups)} groups differ, "
                 f"{report.builds} builds (--max-builds {report.max_builds})")  # fmt: skip
    style = "bold green" if report.verdict in ("pass", "cause") else "bold red"
    parts: list[RenderableType] = [title]
    if report.trials:
        parts.append(table)
    return Stack(*parts, Text(report.summary, style=style))


def bisect_markdown(report: BisectReport) -> str:
    icon = "✅" if report.verdict == "pass" else "🔎" if report.verdict == "cause" else "❌"
    lines = [
        f"# {icon} envrepro bisect: {_cell(report.model)}", "",
        f"Image `{_cell(report.image)}`, snapshot `{_cell(report.snapshot)}`: {len(report.groups)} groups "
        f"differ, {report.builds} builds (--max-builds {report.max_builds}).", "",
        f"**{_cell(report.summary)}**", "",
    ]  # fmt: skip
    if report.trials:
        lines += ["| # | returned to training | build | max abs | parity |", "|---|---|---|---|---|"]
        for number, trial in enumerate(report.trials, 1):
            measured = _number(trial.max_abs_error) if trial.outcome != "not-run" else "—"
            changed = trial.changed + (f" ({trial.note})" if trial.note else "")
            cells = (str(number), changed, "yes" if trial.built else "no", measured, trial.outcome)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
