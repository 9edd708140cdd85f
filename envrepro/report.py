"""Human-readable views of envrepro's values (rich renderables). Pure: the CLI decides where they go."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

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
