"""Differences between two environments, grouped by how much they can move a model's numbers.

breaks: changes or breaks results (TF, Keras major, NumPy major, CUDA, cuDNN, oneDNN, XLA, TF32, ...)
may:    may change results (other numeric libraries, thread settings, driver)
cosmetic: everything else
The explanation of each kind is data (envrepro/data/differences.json), with its source.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from envrepro.data import difference_kinds, numeric_libraries
from envrepro.snapshot import Environment

Group = Literal["breaks", "may", "cosmetic"]
GROUP_ORDER: dict[str, int] = {"breaks": 0, "may": 1, "cosmetic": 2}
ABSENT = "(absent)"

_XLA = {"TF_XLA_FLAGS", "XLA_FLAGS"}
_TF32 = {"NVIDIA_TF32_OVERRIDE"}
_DETERMINISM = {"TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC", "TF_CUDNN_USE_AUTOTUNE"}
_ONEDNN = {"TF_ENABLE_ONEDNN_OPTS", "ONEDNN_DEFAULT_FPMATH_MODE", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"}
_KERAS = {"TF_USE_LEGACY_KERAS", "KERAS_BACKEND"}


@dataclass(frozen=True)
class Difference:
    kind: str
    group: Group
    field: str
    before: str
    after: str
    why: str
    source: str

    @property
    def rank(self) -> tuple[int, int]:
        order = list(difference_kinds())
        return GROUP_ORDER[self.group], order.index(self.kind) if self.kind in order else len(order)


def diff(before: Environment, after: Environment) -> tuple[Difference, ...]:
    """Every difference, most consequential first."""
    found = [
        *_python(before, after),
        *_tensorflow(before, after),
        *_distributions(before, after),
        *_gpu(before, after),
        *_env(before, after),
        *_cpu(before, after),
        *_system(before, after),
    ]
    return tuple(sorted(found, key=lambda d: (*d.rank, d.field)))


def breaks(differences: Sequence[Difference]) -> bool:
    """Whether any difference changes or breaks results (`envrepro diff` then exits 1)."""
    return any(d.group == "breaks" for d in differences)


def _make(kind: str, field: str, before: object, after: object) -> Difference:
    info = difference_kinds()[kind]
    group: Group = info["group"]  # type: ignore[assignment]
    return Difference(kind, group, field, _text(before), _text(after), info["why"], info["source"])


def _text(value: object) -> str:
    if value is None or value == "":
        return ABSENT
    return str(value)


def _python(a: Environment, b: Environment) -> Iterator[Difference]:
    if a.python.minor != b.python.minor:
        yield _make("python_minor", "python", a.python.version, b.python.version)
    elif a.python.version != b.python.version:
        yield _make("python_patch", "python", a.python.version, b.python.version)


def _tensorflow(a: Environment, b: Environment) -> Iterator[Difference]:
    ta, tb = a.tensorflow, b.tensorflow
    if (ta.version if ta else None) != (tb.version if tb else None):
        yield _make("tensorflow", "tensorflow", ta.version if ta else None, tb.version if tb else None)
    if ta is None or tb is None:
        return
    if ta.keras_major != tb.keras_major:
        yield _make("keras_major", "keras", ta.keras_version, tb.keras_version)
    elif ta.keras_version != tb.keras_version:
        yield _make("keras_minor", "keras", ta.keras_version, tb.keras_version)
    if ta.keras_module != tb.keras_module:
        yield _make("keras_module", "tf.keras", ta.keras_module, tb.keras_module)
    if ta.onednn_enabled != tb.onednn_enabled:
        yield _make("onednn", "oneDNN in effect", _onoff(ta.onednn_enabled), _onoff(tb.onednn_enabled))
    cuda_a, cuda_b = ta.build_info.get("cuda_version"), tb.build_info.get("cuda_version")
    if cuda_a != cuda_b:
        yield _make("cuda", "CUDA (TensorFlow build)", cuda_a, cuda_b)
    cudnn_a, cudnn_b = ta.build_info.get("cudnn_version"), tb.build_info.get("cudnn_version")
    if cudnn_a != cudnn_b:
        yield _make("cudnn", "cuDNN (TensorFlow build)", cudnn_a, cudnn_b)


def _onoff(value: bool | None) -> str:
    return {True: "on", False: "off", None: "unknown"}[value]


def _distributions(a: Environment, b: Environment) -> Iterator[Difference]:
    va = {d.key: d.version for d in a.distributions}
    vb = {d.key: d.version for d in b.distributions}
    libs = numeric_libraries()
    by_tf = ("tensorflow", "tensorflow-cpu") + (("keras",) if a.tensorflow and b.tensorflow else ())
    for key in sorted(set(va) | set(vb)):
        if va.get(key) == vb.get(key) or key in by_tf:  # what _tensorflow compares is not repeated
            continue
        if key == "keras":  # one side has no TensorFlow, so _tensorflow could not compare Keras
            yield _make("keras_major", key, va.get(key), vb.get(key))
        elif key == "numpy":
            yield _make(_numpy_kind(va.get(key), vb.get(key)), "numpy", va.get(key), vb.get(key))
        elif key in libs:
            yield _make("numeric_library", key, va.get(key), vb.get(key))
        elif key.startswith("nvidia-cudnn"):
            yield _make("cudnn", key, va.get(key), vb.get(key))
        elif key.startswith("nvidia-"):
            yield _make("cuda", key, va.get(key), vb.get(key))
        else:
            yield _make("distribution", key, va.get(key), vb.get(key))


def _numpy_kind(a: str | None, b: str | None) -> str:
    major = [(v or "").split(".")[0] for v in (a, b)]
    return "numpy_major" if major[0] != major[1] else "numpy_minor"


def _gpu(a: Environment, b: Environment) -> Iterator[Difference]:
    for name, kind in (("cuda_runtime", "cuda"), ("cudnn", "cudnn"), ("driver", "driver")):
        sa, sb = getattr(a.gpu, name), getattr(b.gpu, name)
        va, vb = (sa.value if sa else None), (sb.value if sb else None)
        if va != vb and va is not None and vb is not None:
            yield _make(kind, f"GPU {name}", va, vb)


def _env(a: Environment, b: Environment) -> Iterator[Difference]:
    for name in sorted(set(a.env) | set(b.env)):
        if a.env.get(name) == b.env.get(name) or name == "TF_CPP_MIN_LOG_LEVEL":
            continue
        yield _make(_env_kind(name), name, a.env.get(name), b.env.get(name))


def _env_kind(name: str) -> str:
    for names, kind in (
        (_ONEDNN, "onednn"),
        (_XLA, "xla"),
        (_TF32, "tf32"),
        (_DETERMINISM, "determinism"),
        (_KERAS, "keras_module"),
    ):
        if name in names:
            return kind
    return "numerics_env"


def _cpu(a: Environment, b: Environment) -> Iterator[Difference]:
    if set(a.cpu.flags) != set(b.cpu.flags):
        only_a = sorted(set(a.cpu.flags) - set(b.cpu.flags))
        only_b = sorted(set(b.cpu.flags) - set(a.cpu.flags))
        yield _make("cpu_flags", "CPU vector instructions", " ".join(only_a) or "-", " ".join(only_b) or "-")


def _system(a: Environment, b: Environment) -> Iterator[Difference]:
    pairs = {
        "OS": (a.os.distribution.pretty_name, b.os.distribution.pretty_name),
        "libc": (f"{a.os.libc.name} {a.os.libc.version}", f"{b.os.libc.name} {b.os.libc.version}"),
        "architecture": (a.os.machine, b.os.machine),
        "container": (a.os.container.detected, b.os.container.detected),
        "CPU model": (a.cpu.model, b.cpu.model),
    }
    for field, (va, vb) in pairs.items():
        if va != vb:
            yield _make("system", field, va, vb)
