"""resolve(): which image a snapshot gets (CPU/GPU, variant, base, Python), and why. Pure, no daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envrepro import snapshot
from envrepro.data import tf_build, tf_build_matrix
from envrepro.errors import (
    BasePythonMismatchError,
    RetiredBaseError,
    UnsupportedPlatformError,
    UnsupportedPythonError,
)
from envrepro.resolve import manylinux_tags, resolve
from envrepro.snapshot import Snapshot

CASES = Path(__file__).parent / "cases"


def load_case(name: str) -> Snapshot:
    return snapshot.load(CASES / name / "envrepro.lock.json")


def changed(snap: Snapshot, **environment: Any) -> Snapshot:
    """A copy of `snap` with some fields of its environment (or nested models) replaced."""
    env = snap.environment
    updates: dict[str, Any] = {}
    for key, value in environment.items():
        if isinstance(value, dict):
            updates[key] = getattr(env, key).model_copy(update=value)
        else:
            updates[key] = value
    return snap.model_copy(update={"environment": env.model_copy(update=updates)})


def requirement_names(snap: Snapshot, **kwargs: Any) -> dict[str, str]:
    return {req.name: req.version for req in resolve(snap, **kwargs).requirements}


@pytest.fixture
def cpu_snap() -> Snapshot:
    return load_case("tf221-cpu-snapshot")


@pytest.fixture
def gpu_snap() -> Snapshot:
    return load_case("tf221-gpu-snapshot")


# --- the build table is data -------------------------------------------------------------------------------


def test_build_table_is_package_data_with_its_source_note() -> None:
    rows = tf_build_matrix()
    assert rows[0].tf_version == "2.4.0"
    assert rows[-1].tf_version == "2.21.0"
    assert all("tensorflow/docs" in row.source for row in rows)
    row = tf_build("2.16.2")
    assert row is not None
    assert (row.tf_version, row.python_max, row.cuda, row.keras_major) == ("2.16.1", (3, 12), "12.3", 3)
    assert tf_build("1.15.0") is None


# --- CPU or GPU, and why ----------------------------------------------------------------------------------


def test_cpu_snapshot_gets_the_exact_python_on_a_slim_bookworm_base(cpu_snap: Snapshot) -> None:
    target = resolve(cpu_snap)
    assert (target.kind, target.variant) == ("cpu", "cpu")
    assert target.base_image == "python:3.11.7-slim-bookworm"
    assert target.python_version == "3.11.7"
    assert target.python_executable == "python3"
    assert "not a CUDA build" in target.reason
    assert target.warnings == ()
    assert (target.cuda, target.cudnn) == (None, None)


def test_auto_picks_gpu_for_a_cuda_build_and_takes_cuda_from_the_nvidia_wheels(gpu_snap: Snapshot) -> None:
    target = resolve(gpu_snap)
    assert (target.kind, target.variant) == ("gpu", "gpu-wheels")
    assert target.base_image == "python:3.11.7-slim-bookworm"
    assert "is a CUDA build (CUDA 12.5.1)" in target.reason
    assert (target.cuda, target.cudnn) == ("12.5", "9.3.0")
    assert "nvidia-cudnn-cu12" in requirement_names(gpu_snap)


def test_auto_picks_gpu_when_only_nvidia_wheels_say_so(gpu_snap: Snapshot) -> None:
    snap = changed(gpu_snap, tensorflow={"built_with_cuda": False, "build_info": {}})
    target = resolve(snap)
    assert target.kind == "gpu"
    assert "nvidia-* CUDA wheels installed (nvidia-cublas-cu12" in target.reason


def test_cpu_target_from_a_gpu_snapshot_drops_nvidia_wheels_and_keeps_tensorflow(gpu_snap: Snapshot) -> None:
    target = resolve(gpu_snap, target="cpu")
    assert target.kind == "cpu"
    assert "--target cpu" in target.reason
    names = requirement_names(gpu_snap, target="cpu")
    assert names["tensorflow"] == "2.21.0"
    assert not [name for name in names if name.startswith("nvidia-")]
    dropped = dict(target.dropped)
    assert "CPU image does not load it" in dropped["nvidia-cudnn-cu12"]


def test_gpu_target_from_a_cpu_snapshot_swaps_tensorflow_cpu_and_warns_about_cuda(cpu_snap: Snapshot) -> None:
    target = resolve(cpu_snap, target="gpu")
    assert target.variant == "gpu-wheels"
    tf = next(req for req in target.requirements if req.name == "tensorflow")
    assert (tf.version, tf.reason) == (
        "2.21.0",
        "tensorflow-cpu -> tensorflow: the CPU-only build cannot use a GPU",
    )
    assert (target.cuda, target.cudnn) == ("12.5", "9.3")  # from the build table
    assert any("tensorflow[and-cuda]" in warning for warning in target.warnings)


def test_tensorflow_before_2_14_uses_the_nvidia_cuda_base_with_ubuntu_python() -> None:
    target = resolve(load_case("tf212-gpu-snapshot"))
    assert (target.kind, target.variant) == ("gpu", "gpu-cuda-base")
    assert target.base_image == "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
    assert target.python_version == "3.10.12"
    assert (target.cuda, target.cudnn) == ("11.8", "8.6")
    assert "TensorFlow < 2.14" in target.reason
    assert target.pip_platforms[0] == "manylinux_2_35_x86_64"


# --- Python rules -----------------------------------------------------------------------------------------


def test_base_python_differing_in_patch_level_is_a_warning(cpu_snap: Snapshot) -> None:
    target = resolve(cpu_snap, base_image="envrepro-test/python:3.11-bookworm", base_python="3.11.2")
    assert target.base_image == "envrepro-test/python:3.11-bookworm"
    assert target.variant == "cpu"  # a --base-image keeps the variant
    assert target.python_version == "3.11.2"
    assert target.warnings == (
        "envrepro-test/python:3.11-bookworm runs Python 3.11.2, the snapshot Python 3.11.7 "
        "(patch level differs only)",
    )
    assert "--base-image" in target.reason


def test_base_python_of_another_minor_version_is_an_error(cpu_snap: Snapshot) -> None:
    with pytest.raises(BasePythonMismatchError) as info:
        resolve(cpu_snap, base_image="python:3.12-slim", base_python="3.12.4")
    assert "runs Python 3.12.4, the snapshot Python 3.11.7" in str(info.value)
    assert info.value.hint == "choose a base image with Python 3.11.x, or leave out --base-image"


def test_a_python_tensorflow_never_supported_names_the_nearest_working_combination(
    cpu_snap: Snapshot,
) -> None:
    snap = changed(cpu_snap, python={"version": "3.9.18"})
    with pytest.raises(UnsupportedPythonError) as info:
        resolve(snap)
    err = info.value
    assert str(err) == "TensorFlow 2.21.0 was never built for Python 3.9.18 (it supports Python 3.10 to 3.13)"
    assert err.nearest == ("Python 3.10 with TensorFlow 2.21.0", "TensorFlow 2.20.0 with Python 3.9")
    assert err.hint is not None
    assert "Python 3.10 with TensorFlow 2.21.0" in err.hint


def test_a_patch_release_older_than_the_bookworm_images_gets_the_nearest_one_with_a_warning(
    cpu_snap: Snapshot,
) -> None:
    target = resolve(changed(cpu_snap, python={"version": "3.11.2"}))
    assert target.base_image == "python:3.11.4-slim-bookworm"
    assert target.python_version == "3.11.4"
    assert "there is no python:3.11.2-slim-bookworm image" in target.warnings[0]


def test_a_retired_cuda_base_is_an_error_naming_the_nearest_base_that_works() -> None:
    legacy = load_case("tf212-gpu-snapshot")
    snap = changed(
        legacy,
        tensorflow={"version": "2.10.1", "build_info": {"cuda_version": "11.2", "cudnn_version": "8"}},
        python={"version": "3.8.10"},
    )
    with pytest.raises(RetiredBaseError) as info:
        resolve(snap)
    assert info.value.base_image == "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04"
    assert "deleted from Docker Hub" in str(info.value)
    assert "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04" in info.value.nearest
    # a --base-image (a copy the user still has) serves it
    target = resolve(snap, base_image="mirror.local/cuda:11.2", base_python="3.8.10")
    assert (target.variant, target.cuda) == ("gpu-cuda-base", "11.2")


def test_a_cuda_base_without_the_snapshots_python_names_what_works() -> None:
    snap = changed(load_case("tf212-gpu-snapshot"), python={"version": "3.11.4"})
    with pytest.raises(RetiredBaseError) as info:
        resolve(snap)
    assert "no Ubuntu release of this CUDA base ships Python 3.11" in str(info.value)
    assert "Python 3.10 on nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04" in info.value.nearest
    assert "TensorFlow >= 2.14" in info.value.nearest


def test_unknown_tensorflow_release_is_a_warning_not_an_error(cpu_snap: Snapshot) -> None:
    target = resolve(changed(cpu_snap, tensorflow={"version": "2.99.0"}))
    assert "TensorFlow 2.99.0 is not in envrepro's build table" in target.warnings[0]


# --- macOS ------------------------------------------------------------------------------------------------


def test_macos_snapshot_resolves_to_a_linux_cpu_image_with_equivalent_packages() -> None:
    snap = load_case("macos-snapshot")
    target = resolve(snap)
    assert (target.kind, target.variant) == ("cpu", "cpu")
    assert "macOS" in target.reason
    assert target.base_image == "python:3.11.7-slim-bookworm"
    reqs = {req.name: req for req in target.requirements}
    assert reqs["tensorflow-cpu"].version == "2.15.0"
    assert reqs["tensorflow-cpu"].reason.startswith("tensorflow -> tensorflow-cpu")
    assert "tensorflow" not in reqs
    assert "tensorflow-macos" not in reqs
    dropped = dict(target.dropped)
    assert "Metal" in dropped["tensorflow-metal"]
    assert dropped["tensorflow-macos"] == "the image already installs tensorflow-cpu 2.15.0"
    assert any("macOS" in warning for warning in target.warnings)


def test_macos_snapshot_for_a_gpu_target_maps_to_tensorflow() -> None:
    names = requirement_names(load_case("macos-snapshot"), target="gpu")
    assert names["tensorflow"] == "2.15.0"
    assert "tensorflow-metal" not in names


# --- requirements, env, labels, platform ------------------------------------------------------------------


def test_requirements_are_sorted_normalised_and_keep_local_labels(cpu_snap: Snapshot) -> None:
    dists = [
        *cpu_snap.environment.distributions,
        snapshot.Distribution(
            name="torch",
            version="2.1.0+cu118",
            installer="pip",
            requested=True,
            origin=snapshot.Origin(kind="url", url="https://download.pytorch.org/x.whl", detail=""),
            reproducible=False,
            reason="installed from a URL",
        ),
    ]
    target = resolve(changed(cpu_snap, distributions=tuple(dists)))
    names = [req.name for req in target.requirements]
    assert names == sorted(names)
    assert "typing-extensions" in names
    assert "pip" not in names
    torch = next(req for req in target.requirements if req.name == "torch")
    assert (torch.version, torch.reproducible, torch.reason) == ("2.1.0+cu118", False, "installed from a URL")
    assert dict(target.dropped)["pip"] == "the image's venv brings its own installer"


def test_image_env_keeps_numerics_variables_and_leaves_out_host_specific_ones(gpu_snap: Snapshot) -> None:
    target = resolve(gpu_snap)
    assert target.env == (
        ("NVIDIA_TF32_OVERRIDE", "0"),
        ("TF_CPP_MIN_LOG_LEVEL", "2"),
        ("TF_ENABLE_ONEDNN_OPTS", "0"),
    )


def test_labels_carry_the_snapshot_digest_and_versions(cpu_snap: Snapshot) -> None:
    labels = dict(resolve(cpu_snap).labels)
    assert labels["io.envrepro.snapshot.digest"] == cpu_snap.digest()
    assert labels["io.envrepro.tensorflow"] == "2.21.0"
    assert labels["io.envrepro.python"] == "3.11.7"
    assert labels["org.opencontainers.image.base.name"] == "python:3.11.7-slim-bookworm"
    assert list(resolve(cpu_snap).labels) == sorted(resolve(cpu_snap).labels)


def test_platform_decides_the_wheel_tags(cpu_snap: Snapshot) -> None:
    target = resolve(cpu_snap, platform="linux/arm64")
    assert target.platform == "linux/arm64"
    assert target.pip_platforms[0] == "manylinux_2_36_aarch64"
    assert target.pip_platforms[-1] == "manylinux2014_aarch64"
    assert manylinux_tags("2.36", "x86_64")[-2:] == ("manylinux_2_5_x86_64", "manylinux1_x86_64")
    with pytest.raises(UnsupportedPlatformError) as info:
        resolve(cpu_snap, platform="windows/amd64")
    assert info.value.hint == "use one of: linux/amd64, linux/arm64"


def test_resolve_is_deterministic(gpu_snap: Snapshot) -> None:
    assert resolve(gpu_snap) == resolve(load_case("tf221-gpu-snapshot"))
