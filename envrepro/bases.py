"""Base images: which image a variant builds on, and the Python and glibc that base brings.

- CPU and GPU with TensorFlow >= 2.14: `python:<exact x.y.z>-slim-bookworm` (data/python_bases.json).
- GPU with TensorFlow < 2.14: `nvidia/cuda:*-cudnn*-runtime-ubuntu*` whose Ubuntu python3 has the snapshot's
  minor version (data/cuda_bases.json); a retired base is an error naming the nearest that works.
- `--base-image` replaces the base and keeps the variant; its Python may differ in the patch level only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envrepro.data import load_json, version_tuple
from envrepro.errors import BasePythonMismatchError, RetiredBaseError
from envrepro.target import Variant


def minor_text(minor: tuple[int, int]) -> str:
    return f"{minor[0]}.{minor[1]}"


@dataclass(frozen=True)
class Base:
    image: str
    python_version: str
    glibc: str
    why: str
    warnings: tuple[str, ...] = ()


def choose_base(
    variant: Variant, python: str, cuda: str | None, base_image: str | None, base_python: str | None
) -> Base:
    """The default base of the variant, or the user's --base-image checked against the snapshot's Python."""
    if base_image is not None:
        return _custom_base(variant, base_image, base_python, python)
    return _default_base(variant, python, cuda)


def _default_base(variant: Variant, python: str, cuda: str | None) -> Base:
    if variant == "gpu-cuda-base":
        return cuda_base(cuda, python)
    return python_slim_base(python)


def python_slim_base(python: str) -> Base:
    """`python:<x.y.z>-slim-bookworm`; a patch release older than bookworm's images gets the nearest one."""
    data = load_json("python_bases.json")
    debian, glibc = data["debian"], data["glibc"]
    minor = minor_text(version_tuple(python))
    first = data["first_bookworm_patch"].get(minor)
    patch = int(python.split(".")[2]) if python.count(".") >= 2 else 0
    if first is None or patch >= first:
        image = f"python:{python}-slim-{debian}"
        return Base(image, python, glibc, f"base {image} runs the snapshot's exact Python {python}")
    nearest = f"{minor}.{first}"
    image = f"python:{nearest}-slim-{debian}"
    warning = (
        f"there is no python:{python}-slim-{debian} image (its {debian} images start at {nearest}); "
        f"using {image}: a patch-level difference, or pass --base-image for Python {python}"
    )
    return Base(
        image, nearest, glibc, f"base {image} is the nearest Python to the snapshot's {python}", (warning,)
    )


def cuda_base(cuda: str | None, python: str) -> Base:
    """`nvidia/cuda:<x.y.z>-cudnn<N>-runtime-ubuntu<ver>` whose Ubuntu python3 has the snapshot's minor."""
    data = load_json("cuda_bases.json")
    bases = data["bases"]
    usable = [b for b in bases if not b["retired"]]
    entry = next((b for b in bases if b["cuda"] == cuda), None)
    if entry is None or entry["retired"]:
        nearest = _tag(usable[-1], usable[-1]["ubuntu"][0])
        image = _tag(entry, entry["ubuntu"][0]) if entry else f"nvidia/cuda (CUDA {cuda})"
        reason = entry["retired"] if entry else f"envrepro knows no nvidia/cuda base for CUDA {cuda}"
        raise RetiredBaseError(image, reason, f"{nearest} (CUDA {usable[-1]['cuda']}: TensorFlow 2.12/2.13)")
    minor = minor_text(version_tuple(python))
    ubuntu = next((u for u in entry["ubuntu"] if data["ubuntu"][u]["python"].startswith(minor + ".")), None)
    if ubuntu is None:
        offered = [
            f"Python {minor_text(version_tuple(data['ubuntu'][u]['python']))} on {_tag(entry, u)}"
            for u in entry["ubuntu"]
        ]
        raise RetiredBaseError(
            _tag(entry, entry["ubuntu"][0]),
            f"no Ubuntu release of this CUDA base ships Python {minor} (the snapshot's {python})",
            "; ".join([*offered, f"TensorFlow >= 2.14 on a python:{minor}-slim base with nvidia-* wheels"]),
        )
    image = _tag(entry, ubuntu)
    base_python = data["ubuntu"][ubuntu]["python"]
    warnings = _patch_warning(image, base_python, python)
    why = f"base {image} provides CUDA {cuda} and cuDNN {entry['cudnn_major']} for TensorFlow < 2.14"
    return Base(image, base_python, data["ubuntu"][ubuntu]["glibc"], why, warnings)


def _tag(entry: dict[str, Any], ubuntu: str) -> str:
    return f"nvidia/cuda:{entry['tag_version']}-cudnn{entry['cudnn_major']}-runtime-ubuntu{ubuntu}"


def _custom_base(variant: Variant, image: str, base_python: str | None, python: str) -> Base:
    glibc = _variant_glibc(variant)
    why = f"base {image} was given with --base-image"
    if base_python is None:
        warning = f"the Python of {image} was not read; assuming the snapshot's {python}"
        return Base(image, python, glibc, why, (warning,))
    if version_tuple(base_python) != version_tuple(python):
        raise BasePythonMismatchError(image, base_python, python)
    return Base(image, base_python, glibc, why, _patch_warning(image, base_python, python))


def _variant_glibc(variant: Variant) -> str:
    """The glibc the variant's default base has; a --base-image is assumed to match it."""
    if variant == "gpu-cuda-base":
        ubuntu: dict[str, dict[str, str]] = load_json("cuda_bases.json")["ubuntu"]
        return min(entry["glibc"] for entry in ubuntu.values())
    return str(load_json("python_bases.json")["glibc"])


def _patch_warning(image: str, base_python: str, python: str) -> tuple[str, ...]:
    if base_python == python:
        return ()
    return (f"{image} runs Python {base_python}, the snapshot Python {python} (patch level differs only)",)
