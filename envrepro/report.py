"""Human-readable views of envrepro's values (rich renderables). Pure: the CLI decides where they go."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from envrepro.diff import Difference
from envrepro.parity_model import OutputResult, ParityReport
from envrepro.snapshot import Distribution, Environment, GpuInfo, ModelRecord, Snapshot


def snapshot_summary(snap: Snapshot, path: str) -> RenderableType:
    env = snap.environment
    table = Table(title=f"envrepro snapshot — {path}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in _environment_rows(env):
        table.add_row(key, value)
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
        table.add_row(f"{dist.name}=={dist.version}", dist.reason)
    return table


def _models(models: tuple[ModelRecord, ...]) -> RenderableType:
    table = Table(title="Models", title_justify="left")
    for column in ("model", "format", "inputs", "outputs", "weights", "reference"):
        table.add_column(column)
    for model in models:
        if model.error:
            table.add_row(
                model.path, Text(f"error: {model.error.kind}", style="red"), model.error.detail, "", "", ""
            )
            continue
        inputs = ", ".join(f"{s.name}{list(s.shape)}:{s.dtype}" for s in model.inputs)
        outputs = ", ".join(f"{s.name}{list(s.shape)}:{s.dtype}" for s in model.outputs)
        ref = f"{model.reference.samples} samples → {model.reference.file}" if model.reference else "none"
        table.add_row(
            model.path,
            model.format or "",
            inputs,
            outputs,
            f"{len(model.weights)} tensors, sha256 {model.weights_sha256[:12]}",
            ref,
        )
    return table


# ---------------------------------------------------------------------------------------------------------
# Parity reports: terminal, Markdown (pull-request comment / step summary), JUnit XML, JSON


def _num(value: float | None, spec: str = ".3g") -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


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


def _outputs_table(title: str, outputs: Sequence[OutputResult]) -> Table:
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    for column in (
        "output",
        "shape",
        "max abs",
        "mean abs",
        "max rel",
        "ulp",
        "min atol",
        "argmax",
        "result",
    ):
        # names and failure reasons wrap instead of being cut (CI logs are often 80 columns wide)
        wraps = column in ("output", "result")
        table.add_column(column, overflow="fold", no_wrap=not wraps, min_width=len(column) if wraps else None)
    for out in outputs:
        table.add_row(
            out.name,
            "x".join(map(str, out.candidate_shape)),
            _num(out.max_abs_error),
            _num(out.mean_abs_error),
            _num(out.max_rel_error),
            _num(out.max_ulp, "d") if out.max_ulp is not None else "—",
            _num(out.min_passing_atol),
            _num(out.argmax_agreement, ".1%") if out.argmax_agreement is not None else "—",
            Text("pass", style="green") if out.passed else Text(f"FAIL: {out.reason}", style="red"),
        )
    return table


def parity_markdown(report: ParityReport) -> str:
    icon = "✅" if report.passed else "❌"
    lines = [
        f"## {icon} envrepro parity: `{report.model}`",
        "",
        f"**{report.summary}**",
        "",
        f"Image `{report.image}` · snapshot `{report.snapshot}` (`{report.snapshot_digest[:12]}`) · "
        f"{report.samples} samples",
        "",
    ]
    if report.preprocessing:
        lines += [f"### Preprocessing `{report.preprocess_function}` (raw samples → arrays)", ""]
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
        lines += [f"1. **{c.cause}** — {c.evidence}" for c in report.likely_causes]
    relevant = [d for d in report.differences if d.group != "cosmetic"]
    if relevant:
        lines += [
            "",
            "### Environment differences that can move numbers (training → image)",
            "",
            "| group | what | training | image |",
            "|---|---|---|---|",
        ]
        lines += [f"| {d.group} | {d.field} | {d.training} | {d.image} |" for d in relevant]
    if report.warnings:
        lines += ["", *[f"> ⚠️ {w}" for w in report.warnings]]
    return "\n".join(lines) + "\n"


def _outputs_markdown(outputs: Sequence[OutputResult]) -> list[str]:
    lines = [
        "| output | shape | max abs | mean abs | max rel | ULP | min passing atol | argmax agree "
        "| atol / rtol | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for out in outputs:
        result = "pass" if out.passed else f"**FAIL**: {out.reason}"
        argmax = _num(out.argmax_agreement, ".1%") if out.argmax_agreement is not None else "—"
        ulp = str(out.max_ulp) if out.max_ulp is not None else "—"
        lines.append(
            f"| `{out.name}` | {'x'.join(map(str, out.candidate_shape))} | {_num(out.max_abs_error)} "
            f"| {_num(out.mean_abs_error)} | {_num(out.max_rel_error)} | {ulp} "
            f"| {_num(out.min_passing_atol)} | {argmax} | {out.atol:g} / {out.rtol:g} | {result} |"
        )
    return lines


def parity_junit(report: ParityReport) -> str:
    """JUnit XML: one test case per output and one for the model fingerprint."""
    suite = ET.Element(
        "testsuite",
        {
            "name": f"envrepro-parity:{report.model}",
            "tests": str(len(report.outputs) + len(report.preprocessing) + 1),
            "failures": str(
                sum(not o.passed for o in (*report.outputs, *report.preprocessing))
                + int(report.model_mismatch)
            ),
            "errors": "0",
            "skipped": "0",
            "time": f"{sum(report.timings.values()):.3f}",
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("image", report.image),
        ("snapshot_digest", report.snapshot_digest),
        ("samples", str(report.samples)),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    case = ET.SubElement(
        suite, "testcase", {"classname": "envrepro.parity", "name": "model fingerprint", "time": "0"}
    )
    if report.model_mismatch:
        failure = ET.SubElement(case, "failure", {"message": "model mismatch", "type": "ModelMismatch"})
        failure.text = "\n".join(
            f"{f.what}: {f.reference} recorded, {f.candidate} now" for f in report.fingerprints if not f.same
        )
    cases = [("preprocessing", "PreprocessingDiffers", o) for o in report.preprocessing]
    cases += [("output", "ParityFailure", o) for o in report.outputs]
    for label, kind, out in cases:
        case = ET.SubElement(
            suite, "testcase", {"classname": "envrepro.parity", "name": f"{label} {out.name}", "time": "0"}
        )
        if not out.passed:
            failure = ET.SubElement(case, "failure", {"message": out.reason, "type": kind})
            failure.text = (
                f"max abs {_num(out.max_abs_error)}, max rel {_num(out.max_rel_error)}, "
                f"smallest passing atol {_num(out.min_passing_atol)}\n"
                + "\n".join(f"likely cause: {c.cause} ({c.evidence})" for c in report.likely_causes)
            )
    root = ET.Element(
        "testsuites",
        {
            "name": "envrepro",
            "tests": suite.get("tests", "0"),
            "failures": suite.get("failures", "0"),
            "errors": "0",
        },
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


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
    """One table per group, most consequential first; A and B are named once above (paths are long)."""
    if not differences:
        return Text(f"no differences between {a} and {b}", style="green")
    parts: list[RenderableType] = [Text(f"A: {a}\nB: {b}")]
    for group in ("breaks", "may", "cosmetic"):
        rows = [d for d in differences if d.group == group]
        if not rows or (group == "cosmetic" and not cosmetic):
            continue
        style = {"breaks": "bold red", "may": "bold yellow", "cosmetic": "dim"}[group]
        table = Table(title=f"{_GROUP_TITLE[group]} ({len(rows)})", title_justify="left", title_style=style)
        for column in ("what", "A", "B"):
            table.add_column(column, overflow="fold")
        table.add_column("why it matters", overflow="fold", ratio=1)
        for d in rows:
            table.add_row(d.field, d.before, d.after, d.why)
        parts.append(table)
    hidden = 0 if cosmetic else sum(d.group == "cosmetic" for d in differences)
    if hidden:
        parts.append(Text(f"{hidden} cosmetic differences not shown (--all shows them)", style="dim"))
    return Group(*parts)


def differences_markdown(differences: Sequence[Difference], a: str, b: str) -> str:
    lines = [f"## envrepro diff: `{a}` → `{b}`", ""]
    if not differences:
        return "\n".join([*lines, "No differences.", ""])
    for group in ("breaks", "may", "cosmetic"):
        rows = [d for d in differences if d.group == group]
        if not rows:
            continue
        lines += [
            f"### {_GROUP_TITLE[group]} ({len(rows)})",
            "",
            f"| what | `{a}` | `{b}` | why it matters |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {d.field} | {d.before} | {d.after} | {d.why}" + (f" ({d.source})" if d.source else "") + " |"
            for d in rows
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
