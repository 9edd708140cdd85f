"""Resolve: decide from a snapshot what image to build (CPU or GPU, base, Python, platform) and say why.

Rules (README "envrepro build"; the facts are in envrepro/data with their sources; bases in bases.py):

- auto picks GPU when the snapshot's TensorFlow is a CUDA build or nvidia-* wheels are installed, else CPU.
- CPU: `python:<exact x.y.z>-slim-bookworm`. GPU, TF >= 2.14: the same slim base, CUDA/cuDNN from the
  snapshot's pinned nvidia-* wheels ("gpu-wheels"). GPU, TF < 2.14: `nvidia/cuda:*-cudnn*-runtime-ubuntu*`
  with Ubuntu's python3 ("gpu-cuda-base").
- `--base-image` replaces the base and keeps the variant; its Python may differ from the snapshot's in the
  patch level only (a warning), never in the minor version (an error).
- A combination that cannot be served (a Python the TensorFlow release was never built for, a retired base)
  is an error that names the nearest combination that works.
- macOS snapshots map to the Linux builds of the same packages (data/macos_map.json).
- The platform is the training machine's architecture, as the snapshot recorded it (x86_64/amd64 ->
  linux/amd64, aarch64/arm64 -> linux/arm64; any other is an error), unless `--platform` names one.

Environment variables: the image carries the snapshot's numerics-relevant variables (data/numerics_env.json)
except the host-specific ones in `HOST_SPECIFIC_ENV`, which belong to the machine that runs the container.
"""

from __future__ import annotations

from typing import Any, Literal

from envrepro.bases import Base, choose_base, minor_text
from envrepro.data import TfBuild, load_json, numerics_env_names, tf_build, tf_build_matrix, version_tuple
from envrepro.errors import UnsupportedMachineError, UnsupportedPlatformError, UnsupportedPythonError
from envrepro.snapshot import Distribution, Environment, Snapshot
from envrepro.target import PLATFORM_ARCH, Requirement, Target, TargetKind, Variant

TargetChoice = Literal["cpu", "gpu", "auto"]

# Variables recorded by the snapshot that describe the host, not the numerics: left out of the image.
HOST_SPECIFIC_ENV = {
    "CUDA_VISIBLE_DEVICES": "device indices belong to the host that runs the container (use docker --gpus)",
}

# platform.machine() of a training machine -> the image platform: Linux, macOS (arm64), Windows (AMD64)
MACHINE_PLATFORM = {
    "x86_64": "linux/amd64",
    "amd64": "linux/amd64",
    "aarch64": "linux/arm64",
    "arm64": "linux/arm64",
}
TF_FAMILY = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos", "tensorflow-intel")
PIP_DROPPED = "the image's venv brings its own installer"
FIRST_WHEELS_GPU = (2, 14)  # tensorflow[and-cuda]: CUDA/cuDNN as nvidia-* wheels from this release on


def resolve(
    snap: Snapshot,
    *,
    target: TargetChoice = "auto",
    base_image: str | None = None,
    base_python: str | None = None,
    platform: str | None = None,
) -> Target:
    """Decide the image for `snap`: kind, variant, base, Python, platform (None: the snapshot's machine),
    requirements, env and labels."""
    env = snap.environment
    platform, platform_why = choose_platform(env, platform)
    arch = _arch(platform)
    tf_version = tensorflow_version(env)
    tf_warnings = _check_tensorflow(tf_version, env.python.version)
    kind, kind_why = choose_kind(env, target)
    variant = _variant(kind, tf_version)
    requirements, dropped, req_warnings = requirements_for(env, kind)
    cuda, cudnn, cuda_warnings = _cuda_versions(variant, env, tf_build(tf_version) if tf_version else None)
    base = choose_base(variant, env.python.version, cuda, base_image, base_python)
    image_env, env_warnings = image_environment(env.env)
    warnings = tf_warnings + req_warnings + cuda_warnings + list(base.warnings) + _macos_warnings(env)
    labels = image_labels(snap.digest(), tf_version, base, kind, variant)
    return Target(
        kind=kind,
        variant=variant,
        reason=f"{kind_why}; {base.why}; {platform_why}",
        base_image=base.image,
        python_version=base.python_version,
        python_executable="python3",
        platform=platform,
        pip_platforms=manylinux_tags(base.glibc, arch),
        cuda=cuda,
        cudnn=cudnn,
        env=image_env,
        labels=labels,
        warnings=tuple(warnings + env_warnings),
        requirements=requirements,
        dropped=dropped,
    )


def _check_tensorflow(tf_version: str, python_version: str) -> list[str]:
    """Raise when the TensorFlow release was never built for the Python; warn when it is not in the table."""
    build = tf_build(tf_version) if tf_version else None
    if build is not None:
        check_python_supported(tf_version, python_version, build)
    return [_unknown_tf_warning(tf_version)] if tf_version and build is None else []


def _macos_warnings(env: Environment) -> list[str]:
    if env.os.system != "Darwin":
        return []
    return [
        "snapshot taken on macOS: the image runs Linux TensorFlow kernels, not Apple's; "
        "expect small numerical differences"
    ]


# --- what the snapshot has -------------------------------------------------------------------------------


def tensorflow_version(env: Environment) -> str:
    """The snapshot's TensorFlow version ("" when it has none): as imported, else as installed."""
    if env.tensorflow is not None and env.tensorflow.version:
        return env.tensorflow.version
    dist = next((d for d in env.distributions if d.key in TF_FAMILY), None)
    return dist.version if dist else ""


def nvidia_wheels(env: Environment) -> tuple[Distribution, ...]:
    return tuple(d for d in env.distributions if d.key.startswith("nvidia-"))


def choose_kind(env: Environment, target: TargetChoice) -> tuple[TargetKind, str]:
    """CPU or GPU, and the sentence that says why."""
    if target != "auto":
        return target, f"{target.upper()} because --target {target} was asked for"
    tf = env.tensorflow
    cuda_build = tf is not None and (tf.built_with_cuda or bool(tf.build_info.get("cuda_version")))
    if cuda_build and tf is not None:
        cuda = tf.build_info.get("cuda_version")
        built = f" (CUDA {cuda})" if cuda else ""
        return "gpu", f"GPU because the snapshot's TensorFlow {tf.version} is a CUDA build{built}"
    wheels = nvidia_wheels(env)
    if wheels:
        names = ", ".join(d.key for d in wheels[:3]) + (", ..." if len(wheels) > 3 else "")
        return "gpu", f"GPU because the snapshot has nvidia-* CUDA wheels installed ({names})"
    if env.os.system == "Darwin":
        return "cpu", "CPU because the snapshot was taken on macOS, whose Metal GPU plugin has no Linux build"
    return (
        "cpu",
        "CPU because the snapshot's TensorFlow is not a CUDA build and no nvidia-* wheels are installed",
    )


def _variant(kind: TargetKind, tf_version: str) -> Variant:
    if kind == "cpu":
        return "cpu"
    if tf_version and version_tuple(tf_version) < FIRST_WHEELS_GPU:
        return "gpu-cuda-base"
    return "gpu-wheels"


def _unknown_tf_warning(tf_version: str) -> str:
    newest = tf_build_matrix()[-1].tf_version
    return (
        f"TensorFlow {tf_version} is not in envrepro's build table (it knows 2.4 to {newest}); "
        "Python and CUDA support were not checked"
    )


# --- Python support ---------------------------------------------------------------------------------------


def check_python_supported(tf_version: str, python_version: str, build: TfBuild) -> None:
    """Raise when TensorFlow `tf_version` was never built for the snapshot's Python, naming what works."""
    python = version_tuple(python_version)
    if build.supports(python):
        return
    clamped = min(max(python, build.python_min), build.python_max)
    nearest = [f"Python {minor_text(clamped)} with TensorFlow {tf_version}"]
    others = [row for row in tf_build_matrix() if row.supports(python)]
    if others:
        near = min(others, key=lambda row: _distance(row.tf_minor, build.tf_minor))
        nearest.append(f"TensorFlow {near.tf_version} with Python {minor_text(python)}")
    supported = f"Python {minor_text(build.python_min)} to {minor_text(build.python_max)}"
    raise UnsupportedPythonError(tf_version, python_version, supported, nearest)


def _distance(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (abs(a[0] - b[0]), abs(a[1] - b[1]))


# --- requirements -----------------------------------------------------------------------------------------


def requirements_for(
    env: Environment, kind: TargetKind
) -> tuple[tuple[Requirement, ...], tuple[tuple[str, str], ...], list[str]]:
    """The image's requirements after CPU/GPU and macOS substitutions, what was dropped, and warnings."""
    mac = load_json("macos_map.json") if env.os.system == "Darwin" else {"substitute": {}, "drop": {}}
    kept: dict[str, Requirement] = {}
    dropped: list[tuple[str, str]] = []
    warnings: list[str] = []
    for dist in sorted(env.distributions, key=lambda d: d.key):
        why_dropped = _drop_reason(dist.key, kind, mac)
        if why_dropped:
            dropped.append((dist.key, why_dropped))
            continue
        req = _substitute(dist, kind, mac)
        earlier = kept.get(req.name)
        if earlier is None:
            kept[req.name] = req
            continue
        dropped.append((dist.key, f"the image already installs {req.name} {earlier.version}"))
        if earlier.version != req.version:
            warnings.append(
                f"{dist.key} {dist.version} and {earlier.name} {earlier.version} both map to "
                f"{req.name}; the image installs {earlier.version}"
            )
    return tuple(sorted(kept.values(), key=lambda r: r.name)), tuple(sorted(dropped)), warnings


def _drop_reason(key: str, kind: TargetKind, mac: dict[str, Any]) -> str:
    if key == "pip":
        return PIP_DROPPED
    if key in mac["drop"]:
        return str(mac["drop"][key])
    if kind == "cpu" and key.startswith("nvidia-"):
        return "CUDA library wheel: a CPU image does not load it (TensorFlow runs on CPU without it)"
    return ""


def _substitute(dist: Distribution, kind: TargetKind, mac: dict[str, Any]) -> Requirement:
    key = dist.key
    if key in mac["substitute"]:
        entry = mac["substitute"][key]
        name = str(entry[kind])
        return Requirement(name, dist.version, dist.reproducible, f"{key} -> {name}: {entry['why']}")
    if kind == "gpu" and key == "tensorflow-cpu":
        reason = "tensorflow-cpu -> tensorflow: the CPU-only build cannot use a GPU"
        return Requirement("tensorflow", dist.version, dist.reproducible, reason)
    return Requirement(key, dist.version, dist.reproducible, dist.reason)


# --- CUDA / cuDNN -----------------------------------------------------------------------------------------


def _cuda_versions(
    variant: Variant, env: Environment, build: TfBuild | None
) -> tuple[str | None, str | None, list[str]]:
    if variant == "cpu":
        return None, None, []
    build_info = env.tensorflow.build_info if env.tensorflow else {}
    table_cuda = build.cuda if build else None
    table_cudnn = build.cudnn if build else None
    if variant == "gpu-cuda-base":
        cuda = _major_minor(build_info["cuda_version"]) if build_info.get("cuda_version") else table_cuda
        return cuda, table_cudnn, []
    runtime = _wheel_version(env, "nvidia-cuda-runtime-cu")
    cudnn = _wheel_version(env, "nvidia-cudnn-cu")
    if runtime and cudnn:
        return _major_minor(runtime), ".".join(cudnn.split(".")[:3]), []
    warning = (
        "the snapshot pins no nvidia-* CUDA wheels, so the image has no CUDA libraries and TensorFlow will "
        "run on CPU; install tensorflow[and-cuda] in the training environment and snapshot again"
    )
    return table_cuda, table_cudnn, [warning]


def _wheel_version(env: Environment, prefix: str) -> str | None:
    dist = next((d for d in env.distributions if d.key.startswith(prefix)), None)
    return dist.version if dist else None


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


# --- platform, env, labels --------------------------------------------------------------------------------


def choose_platform(env: Environment, platform: str | None) -> tuple[str, str]:
    """The image's platform and the sentence that says why: as asked, else the training machine's."""
    if platform is not None:
        _arch(platform)
        return platform, f"{platform} because --platform {platform} was asked for"
    machine = env.os.machine
    chosen = MACHINE_PLATFORM.get(machine.lower())
    if chosen is None:
        raise UnsupportedMachineError(machine, sorted(PLATFORM_ARCH))
    return chosen, f"{chosen} because the snapshot's machine is {machine}"


def _arch(platform: str) -> str:
    try:
        return PLATFORM_ARCH[platform]
    except KeyError:
        raise UnsupportedPlatformError(platform, sorted(PLATFORM_ARCH)) from None


def manylinux_tags(glibc: str, arch: str) -> tuple[str, ...]:
    """Wheel platform tags a Linux with this glibc on `arch` installs, most specific first (pip's order)."""
    major, top = (int(part) for part in glibc.split(".")[:2])
    lowest = 5 if arch == "x86_64" else 17
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags: list[str] = []
    for minor in range(top, lowest - 1, -1):
        tags.append(f"manylinux_{major}_{minor}_{arch}")
        if minor in legacy:
            tags.append(f"{legacy[minor]}_{arch}")
    return tuple(tags)


def image_environment(env: dict[str, str]) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The snapshot's numerics variables to bake in, sorted; host-specific and unsafe values left out."""
    names = set(numerics_env_names())
    kept: list[tuple[str, str]] = []
    warnings: list[str] = []
    for name, value in sorted(env.items()):
        if name not in names or name in HOST_SPECIFIC_ENV:
            continue
        if not value.isprintable():
            warnings.append(f"{name} has a non-printable value and is left out of the image")
            continue
        kept.append((name, value))
    return tuple(kept), warnings


def image_labels(
    digest: str, tf_version: str, base: Base, kind: TargetKind, variant: Variant
) -> tuple[tuple[str, str], ...]:
    """OCI labels plus envrepro's own; deterministic (no dates, no envrepro version)."""
    python = base.python_version
    tensorflow = tf_version or "none"
    labels = (
        ("io.envrepro.python", python),
        ("io.envrepro.snapshot.digest", digest),
        ("io.envrepro.target", kind),
        ("io.envrepro.tensorflow", tensorflow),
        ("io.envrepro.variant", variant),
        ("org.opencontainers.image.base.name", base.image),
        (
            "org.opencontainers.image.description",
            f"TensorFlow {tensorflow} on Python {python} ({kind}), rebuilt from an envrepro snapshot",
        ),
        ("org.opencontainers.image.title", f"envrepro {digest[:12]}"),
    )
    return tuple(sorted(labels))
