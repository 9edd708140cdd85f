"""Human-readable views of envrepro's values (rich renderables). Pure: the CLI decides where they go."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from envrepro.diff import Difference
from envrepro.junit import number, parity_junit
from envrepro.parity_model import OutputResult, ParityReport
from envrepro.snapshot import Distribution, Environment, GpuInfo, ModelRecord, Snapshot, TensorSpec

__all__ = [
    "differences_json",
    "differences_markdown",
    "differences_table",
    "parity_json",
    "parity_junit",
    "parity_markdown",
    "parity_table",
    "snapshot_summary",
]


def snapshot_summary(snap: Snapshot, path: str) -> RenderableType:
    env = snap.environment
    table = Table(title=Text(f"envrepro snapshot — {path}"), show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in _environment_rows(env):
        table.add_row(key, Text(value))  # Text: a snapshot's values are never rich markup
    parts: list[RenderableType] = [table]
    blocked = [dist for dist in env.distributions if not dist.reproducible]
    if blocked:
        parts.append(_not_reproducible(blocked))
    if snap.models:
        parts.append(_models(snap.models))
    return Group(*parts)


def _environment_rows(env: Environment) -> list[tuple[str, str]]:
    py, osinfo, cpu = env.python, env.os, env.cpu
    tf = env.tensorflow
    rows = [
        ("Python", f"{py.version} ({py.implementation}, {py.abi_tag}) at {py.executable}"),
        (
            "OS",
            f"{osinfo.distribution.pretty_name or osinfo.system} · {osinfo.libc.name} {osinfo.libc.version}"
            f" · kernel {osinfo.kernel} · {osinfo.machine}"
            + (" · in a container" if osinfo.container.detected else ""),
        ),
        ("CPU", f"{cpu.model} ({cpu.vendor}, {cpu.logical_cpus} logical)"),
        ("CPU vector flags", " ".join(cpu.flags) or "none detected"),
        ("Distributions", str(len(env.distributions))),
    ]
    if tf is None:
        rows.append(("TensorFlow", "not installed"))
    elif tf.import_error:
        rows.append(("TensorFlow", f"installed but fails to import: {tf.import_error}"))
    else:
        onednn = {True: "on", False: "off", None: "unknown"}[tf.onednn_enabled]
        rows.append(
            (
                "TensorFlow",
                f"{tf.version} ({'CUDA build' if tf.built_with_cuda else 'CPU build'}, oneDNN {onednn})",
            )
        )
        rows.append(("Keras", f"{tf.keras_version} via tf.keras → {tf.keras_module or '?'}"))
        rows.append(("Devices", ", ".join(d.name.split("device:")[-1] for d in tf.devices) or "none"))
    numpy = env.distribution("numpy")
    rows.append(("NumPy", numpy.version if numpy else "not installed"))
    rows.append(("GPU", _gpu_line(env.gpu)))
    rows.append(("Numerics env", " ".join(f"{k}={v}" for k, v in sorted(env.env.items())) or "none set"))
    return rows


def _gpu_line(gpu: GpuInfo) -> str:
    if not gpu.gpus and gpu.driver is None:
        return "none (CPU snapshot)"
    names = ", ".join(f"{g.name} (cc {g.compute_capability or '?'})" for g in gpu.gpus) or "no GPU listed"
    parts = [names]
    for label, value in (("driver", gpu.driver), ("CUDA", gpu.cuda_runtime), ("cuDNN", gpu.cudnn)):
        if value is not None:
            parts.append(f"{label} {value.value} [{value.source}]")
    return " · ".join(parts)


def _not_reproducible(dists: Sequence[Distribution]) -> RenderableType:
    table = Table(title="Not reproducible from an index", title_justify="left", title_style="yellow")
    table.add_column("distribution")
    table.add_column("what to do")
    for dist in dists:
        table.add_row(Text(f"{dist.name}=={dist.version}"), Text(dist.reason))
    return table


def _models(models: tuple[ModelRecord, ...]) -> RenderableType:
    """A few lines per model, not a wide table: at 80 columns a table would cut paths and shapes, while
    lines wrap between words (a long path moves to a line of its own)."""
    return Group(Text("Models", style="bold"), *(_model_lines(model) for model in models))


def _model_lines(model: ModelRecord) -> Group:
    if model.error:
        rows = [(f"error: {model.error.kind}", model.error.detail)]
    else:
        ref = f"{model.reference.samples} samples → {model.reference.file}" if model.reference else "none"
        rows = [
            ("format", model.format or ""),
            ("inputs", "; ".join(_tensor_spec(s) for s in model.inputs)),
            ("outputs", "; ".join(_tensor_spec(s) for s in model.outputs)),
            ("weights", f"{len(model.weights)} tensors, sha256 {model.weights_sha256[:12]}"),
            ("reference", ref),
        ]
    style = "red" if model.error else "bold"
    lines = [
        Text.assemble(("  " + key.ljust(10), style if model.error else ""), " ", value) for key, value in rows
    ]
    return Group(Text(model.path, style="bold"), *lines)


def _tensor_spec(spec: TensorSpec) -> str:
    dims = ", ".join("None" if d is None else str(d) for d in spec.shape)
    return f"{spec.name} ({dims}) {spec.dtype}"


# ---------------------------------------------------------------------------------------------------------
# Parity reports: terminal, Markdown (pull-request comment / step summary), JUnit XML, JSON


def parity_table(report: ParityReport) -> RenderableType:
    parts: list[RenderableType] = []
    if report.preprocessing:
        parts.append(
            _outputs_table(
                f"preprocessing — {report.preprocess_function} in {report.image}", report.preprocessing
            )
        )
    title = f"model — {report.model} in {report.image} ({report.samples} samples)"
    parts.append(_outputs_table(title if report.preprocessing else "parity — " + title[8:], report.outputs))
    if report.model_mismatch:
        parts.append(
            Text(
                "model mismatch: "
                + "; ".join(f"{f.what} differs" for f in report.fingerprints if not f.same),
                style="bold red",
            )
        )
    for cause in report.likely_causes:
        parts.append(Text.assemble(("likely cause: ", "bold"), cause.cause, (f" — {cause.evidence}", "dim")))
    for warning in report.warnings:
        parts.append(Text.assemble(("warning: ", "yellow"), warning))
    style = "bold green" if report.passed else "bold red"
    parts.append(Text(report.summary, style=style))
    return Group(*parts)


NAME_WIDTH = 56  # the widest output name shown on one line; 80 columns minus number, shape and verdict
_NUMBER_COLUMNS = ("max abs", "mean abs", "max rel", "ulp", "min atol", "argmax")


def _outputs_table(title: str, outputs: Sequence[OutputResult]) -> Group:
    """Narrow tables keyed by row number, so that at 80 columns no name or number is ever cut: what each
    output is (name, shape, verdict), its numbers, then each failure's reason as a wrapped line."""
    reasons = [
        Text.assemble((f"{index} {out.name}: FAIL", "red"), f" — {out.reason}")
        for index, out in enumerate(outputs, 1)
        if not out.passed
    ]
    return Group(Text(title), _verdicts_table(outputs), _numbers_table(outputs), *reasons, Text(""))


def _narrow_table() -> Table:
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)


def _verdicts_table(outputs: Sequence[OutputResult]) -> Table:
    table = _narrow_table()
    table.add_column("#", justify="right", no_wrap=True)
    longest = max((len(out.name) for out in outputs), default=0)
    table.add_column("output", min_width=min(longest, NAME_WIDTH), overflow="fold")
    table.add_column("shape", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for index, out in enumerate(outputs, 1):
        verdict = Text("pass", style="green") if out.passed else Text("FAIL", style="red")
        table.add_row(str(index), Text(out.name), "x".join(map(str, out.candidate_shape)), verdict)
    return table


def _numbers_table(outputs: Sequence[OutputResult]) -> Table:
    table = _narrow_table()
    table.add_column("#", justify="right", no_wrap=True)
    for column in _NUMBER_COLUMNS:
        table.add_column(column, justify="right", no_wrap=True)
    for index, out in enumerate(outputs, 1):
        table.add_row(str(index), *_numbers(out))
    return table


def _numbers(out: OutputResult) -> tuple[str, ...]:
    return (
        number(out.max_abs_error),
        number(out.mean_abs_error),
        number(out.max_rel_error),
        number(out.max_ulp, "d") if out.max_ulp is not None else "—",
        number(out.min_passing_atol),
        number(out.argmax_agreement, ".1%") if out.argmax_agreement is not None else "—",
    )


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, and a `|` that does not end the cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    """A code span that holds any text (GFM: a pipe in a table needs its backslash even inside one)."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {_cell(text)} {fence}" if fence == "``" else f"`{_cell(text)}`"


def _row(*cells: str) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def parity_markdown(report: ParityReport) -> str:
    icon = "✅" if report.passed else "❌"
    lines = [
        f"## {icon} envrepro parity: {_code(report.model)}",
        "",
        f"**{_cell(report.summary)}**",
        "",
        f"Image {_code(report.image)} · snapshot {_code(report.snapshot)} "
        f"(`{report.snapshot_digest[:12]}`) · {report.samples} samples",
        "",
    ]
    if report.preprocessing:
        lines += [f"### Preprocessing {_code(report.preprocess_function)} (raw samples → arrays)", ""]
        lines += _outputs_markdown(report.preprocessing)
        lines += ["", "### Model (recorded inputs → outputs)", ""]
    lines += _outputs_markdown(report.outputs)
    lines += ["", "| fingerprint | recorded | now | |", "|---|---|---|---|"]
    for f in report.fingerprints:
        lines.append(
            f"| {f.what} | `{f.reference[:12]}` | `{f.candidate[:12]}` "
            f"| {'same' if f.same else '**differs**'} |"
        )
    if report.likely_causes:
        lines += ["", "### Likely causes, most likely first", ""]
        lines += [f"1. **{_cell(c.cause)}** — {_cell(c.evidence)}" for c in report.likely_causes]
    relevant = [d for d in report.differences if d.group != "cosmetic"]
    if relevant:
        lines += [
            "",
            "### Environment differences that can move numbers (training → image)",
            "",
            "| group | what | training | image |",
            "|---|---|---|---|",
        ]
        lines += [_row(d.group, d.field, d.training, d.image) for d in relevant]
    if report.warnings:
        lines += ["", *[f"> ⚠️ {_cell(w)}" for w in report.warnings]]
    return "\n".join(lines) + "\n"


def _outputs_markdown(outputs: Sequence[OutputResult]) -> list[str]:
    lines = [
        "| output | shape | max abs | mean abs | max rel | ULP | min passing atol | argmax agree "
        "| atol / rtol | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for out in outputs:
        result = "pass" if out.passed else f"**FAIL**: {_cell(out.reason)}"
        argmax = number(out.argmax_agreement, ".1%") if out.argmax_agreement is not None else "—"
        ulp = str(out.max_ulp) if out.max_ulp is not None else "—"
        lines.append(
            f"| {_code(out.name)} | {'x'.join(map(str, out.candidate_shape))} | {number(out.max_abs_error)} "
            f"| {number(out.mean_abs_error)} | {number(out.max_rel_error)} | {ulp} "
            f"| {number(out.min_passing_atol)} | {argmax} | {out.atol:g} / {out.rtol:g} | {result} |"
        )
    return lines


def parity_json(report: ParityReport) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Environment differences (`envrepro diff`)

_GROUP_TITLE = {
    "breaks": "breaks or changes results",
    "may": "may change results",
    "cosmetic": "cosmetic",
}


def differences_table(differences: Sequence[Difference], a: str, b: str, *, cosmetic: bool) -> RenderableType:
    """One table per group, most consequential first; A and B are named once above (paths are long).
    Why a difference matters is a numbered note under its table, so the table stays narrow at 80 columns."""
    if not differences:
        return Text(f"no differences between {a} and {b}", style="green")
    parts: list[RenderableType] = [Text(f"A: {a}\nB: {b}")]
    for group in ("breaks", "may", "cosmetic"):
        rows = [d for d in differences if d.group == group]
        if rows and (group != "cosmetic" or cosmetic):
            parts += _group_table(group, rows)
    hidden = 0 if cosmetic else sum(d.group == "cosmetic" for d in differences)
    if hidden:
        parts.append(Text(f"{hidden} cosmetic differences not shown (--all shows them)", style="dim"))
    return Group(*parts)


def _group_table(group: str, rows: Sequence[Difference]) -> list[RenderableType]:
    style = {"breaks": "bold red", "may": "bold yellow", "cosmetic": "dim"}[group]
    table = Table(title=f"{_GROUP_TITLE[group]} ({len(rows)})", title_justify="left", title_style=style)
    notes = list(dict.fromkeys(d.why for d in rows))
    cells = [(d.field, d.before, d.after, f"[{notes.index(d.why) + 1}]") for d in rows]
    for index, column in enumerate(("what", "A", "B", "why")):
        table.add_column(column, overflow="fold", min_width=_longest_word([c[index] for c in cells]))
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))  # a snapshot's free text is never rich markup
    return [table, *(Text(f"[{number}] {why}", style="dim") for number, why in enumerate(notes, 1))]


def _longest_word(texts: Sequence[str], cap: int = 24) -> int:
    """The width that lets rich wrap these texts between words without cutting one (up to `cap`)."""
    return min(max((len(word) for text in texts for word in text.split()), default=1), cap)


def differences_markdown(differences: Sequence[Difference], a: str, b: str) -> str:
    lines = [f"## envrepro diff: {_code(a)} → {_code(b)}", ""]
    if not differences:
        return "\n".join([*lines, "No differences.", ""])
    for group in ("breaks", "may", "cosmetic"):
        rows = [d for d in differences if d.group == group]
        if not rows:
            continue
        lines += [
            f"### {_GROUP_TITLE[group]} ({len(rows)})",
            "",
            f"| what | {_code(a)} | {_code(b)} | why it matters |",
            "|---|---|---|---|",
        ]
        lines += [
            _row(d.field, d.before, d.after, d.why + (f" ({d.source})" if d.source else "")) for d in rows
        ]
        lines.append("")
    return "\n".join(lines)


def differences_json(differences: Sequence[Difference], a: str, b: str) -> str:
    payload = {
        "a": a,
        "b": b,
        "breaks": any(d.group == "breaks" for d in differences),
        "differences": [
            {
                "kind": d.kind,
                "group": d.group,
                "field": d.field,
                "a": d.before,
                "b": d.after,
                "why": d.why,
                "source": d.source,
            }
            for d in differences
        ],
    }
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"
