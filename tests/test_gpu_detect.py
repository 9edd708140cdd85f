"""GPU detection without TensorFlow: recorded machines (tests/cases/gpu-*), each parser, precedence,
disagreements, garbage, and the metadata of a real nvidia-cudnn-cu12 wheel."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from envrepro.probe import gpu

CASES = Path(__file__).parent / "cases"
PROBE_DIR = Path(gpu.__file__).parent
CUDNN_WHEEL = "nvidia-cudnn-cu12==9.3.0.75"
Runner = Callable[[list[str]], tuple[int, str]]


# ---- helpers -----------------------------------------------------------------------------------


def recorded(case: Path, calls: list[list[str]] | None = None) -> Runner:
    """A fake nvidia-smi that answers with the case's recorded output, as the real one would."""

    def run(argv: list[str]) -> tuple[int, str]:
        if calls is not None:
            calls.append(argv)
        if argv[0] != "nvidia-smi":
            return 127, ""
        error = case / "nvidia-smi-compute_cap-error.txt"
        if "compute_cap" in argv[1] and error.exists():
            return 2, error.read_text()  # exit status 2: canonical/inference-snaps#128
        output = case / "nvidia-smi.txt"
        return (0, output.read_text()) if output.exists() else (127, "")

    return run


def no_smi(argv: list[str]) -> tuple[int, str]:
    return 127, ""


def detect(case: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("run", recorded(CASES / case))
    kwargs.setdefault("distributions", [])
    result = gpu.collect(root=str(CASES / case), **kwargs)
    assert json.loads(json.dumps(result)) == result
    return result


def values(result: dict[str, Any], field: str) -> list[tuple[str, str]]:
    return [(o["value"], o["source"]) for o in result["observations"] if o["field"] == field]


class FakeDist:
    """The parts of importlib.metadata.Distribution that collect() uses."""

    def __init__(self, name: str, version: str, base: Path | None = None, files: list[str] | None = None):
        self.metadata = {"Name": name}
        self.version = version
        self.files = files
        self._base = base or Path("/nonexistent-site-packages")

    def locate_file(self, path: str) -> Path:
        return self._base / path


@pytest.fixture(autouse=True)
def _no_cuda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's CUDA variables must not leak into what a fixture machine reports."""
    for name in ("LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH", "CUDNN_PATH"):
        monkeypatch.delenv(name, raising=False)


def make_root(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


CUDNN8_HEADER = (CASES / "gpu-a100-driver535/usr/include/x86_64-linux-gnu/cudnn_version.h").read_text()
CUDNN9_HEADER = (CASES / "gpu-open-module-550/usr/include/cudnn_version.h").read_text()
CUDNN7_CUDNN_H = (CASES / "gpu-t4-driver470/usr/include/cudnn.h").read_text()
PROCFS_535 = (CASES / "gpu-a100-driver535/proc/driver/nvidia/version").read_text()
PROCFS_OPEN_550 = (CASES / "gpu-open-module-550/proc/driver/nvidia/version").read_text()


# ---- recorded machines -------------------------------------------------------------------------


def test_a100_host_reports_driver_cuda_cudnn_and_both_gpus_with_sources():
    result = detect("gpu-a100-driver535")
    assert result["driver"] == {"value": "535.104.05", "source": "sysfs:/sys/module/nvidia/version"}
    assert result["cudnn"] == {
        "value": "8.9.4",
        "source": "header:/usr/include/x86_64-linux-gnu/cudnn_version.h",
    }
    assert result["cuda_runtime"] == {
        "value": "12.2.140",
        "source": "soname:/usr/local/cuda/lib64/libcudart.so.12.2.140",
    }
    assert result["gpus"] == [
        {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0", "source": "nvidia-smi"},
        {"index": 1, "name": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0", "source": "nvidia-smi"},
    ]
    assert result["observations"] == [
        {"field": "cuda_runtime", "value": "12", "source": "soname:/usr/local/cuda/lib64/libcudart.so.12"},
        {
            "field": "cuda_runtime",
            "value": "12.2.140",
            "source": "soname:/usr/local/cuda/lib64/libcudart.so.12.2.140",
        },
        {
            "field": "cudnn",
            "value": "8.9.4",
            "source": "header:/usr/include/x86_64-linux-gnu/cudnn_version.h",
        },
        {"field": "cudnn", "value": "8", "source": "soname:/usr/lib/x86_64-linux-gnu/libcudnn.so.8"},
        {"field": "driver", "value": "535.104.05", "source": "nvidia-smi"},
        {"field": "driver", "value": "535.104.05", "source": "procfs:/proc/driver/nvidia/version"},
        {"field": "driver", "value": "535.104.05", "source": "sysfs:/sys/module/nvidia/version"},
        {"field": "gpu", "value": "0: NVIDIA A100-SXM4-40GB, compute capability 8.0", "source": "nvidia-smi"},
        {"field": "gpu", "value": "1: NVIDIA A100-SXM4-40GB, compute capability 8.0", "source": "nvidia-smi"},
    ]


def test_old_driver_without_compute_cap_still_lists_gpu():
    calls: list[list[str]] = []
    result = detect("gpu-t4-driver470", run=recorded(CASES / "gpu-t4-driver470", calls))
    assert result["gpus"] == [
        {"index": 0, "name": "Tesla T4", "compute_capability": None, "source": "nvidia-smi"}
    ]
    assert calls == [
        ["nvidia-smi", "--query-gpu=index,name,driver_version,compute_cap", "--format=csv,noheader"],
        ["nvidia-smi", "--query-gpu=index,name,driver_version", "--format=csv,noheader"],
    ]
    assert ("0: Tesla T4, compute capability unknown", "nvidia-smi") in values(result, "gpu")


def test_old_driver_without_sysfs_takes_the_driver_from_procfs():
    result = detect("gpu-t4-driver470")
    assert result["driver"] == {"value": "470.182.03", "source": "procfs:/proc/driver/nvidia/version"}
    assert values(result, "driver") == [
        ("470.182.03", "nvidia-smi"),
        ("470.182.03", "procfs:/proc/driver/nvidia/version"),
    ]


def test_cudnn7_version_is_read_from_cudnn_h():
    result = detect("gpu-t4-driver470")
    assert result["cudnn"] == {"value": "7.6.5", "source": "header:/usr/include/cudnn.h"}
    assert result["cuda_runtime"] is None


def test_open_kernel_module_host_reports_driver_hopper_gpu_and_cudnn9():
    result = detect("gpu-open-module-550")
    assert result["driver"] == {"value": "550.54.14", "source": "sysfs:/sys/module/nvidia/version"}
    assert ("550.54.14", "procfs:/proc/driver/nvidia/version") in values(result, "driver")
    assert result["gpus"] == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "source": "nvidia-smi"}
    ]
    assert result["cudnn"] == {"value": "9.1.0", "source": "header:/usr/include/cudnn_version.h"}


def test_cpu_only_machine_gives_an_empty_gpu_record_not_an_error():
    result = detect("cpu-only")
    assert result == {"driver": None, "cuda_runtime": None, "cudnn": None, "gpus": [], "observations": []}


def test_missing_nvidia_smi_with_the_default_runner_is_a_cpu_result(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no nvidia-smi anywhere
    assert gpu.run_command(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"]) == (127, "")
    result = gpu.collect(root=str(CASES / "cpu-only"), distributions=[])
    assert result["gpus"] == []
    assert result["observations"] == []


def test_default_runner_returns_output_and_shows_stderr_of_a_failure():
    ok = gpu.run_command([sys.executable, "-c", "print('0, GPU, 1.2, 8.0')"])
    assert ok == (0, "0, GPU, 1.2, 8.0\n")
    script = (
        "import sys; sys.stderr.write('Field \"compute_cap\" is not a valid field to query.'); sys.exit(2)"
    )
    code, out = gpu.run_command([sys.executable, "-c", script])
    assert code == 2
    assert gpu.nvidia_smi_rejects_compute_cap(out)


def test_failing_nvidia_smi_keeps_the_driver_from_the_kernel_module():
    # after a driver upgrade without a reboot (zzzhouuu/truenas-nvidia-drivers#19)
    def mismatch(argv: list[str]) -> tuple[int, str]:
        return (
            18,
            "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.178\n",
        )

    result = detect("gpu-a100-driver535", run=mismatch)
    assert result["driver"] == {"value": "535.104.05", "source": "sysfs:/sys/module/nvidia/version"}
    assert result["gpus"] == []
    assert ("535.104.05", "nvidia-smi") not in values(result, "driver")


# ---- precedence and disagreements --------------------------------------------------------------


def test_driver_prefers_sysfs_then_procfs_then_nvidia_smi(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(CASES / "gpu-a100-driver535", root)
    run = recorded(CASES / "gpu-a100-driver535")
    assert (
        gpu.collect(str(root), run, distributions=[])["driver"]["source"]
        == "sysfs:/sys/module/nvidia/version"
    )
    (root / "sys/module/nvidia/version").unlink()
    assert (
        gpu.collect(str(root), run, distributions=[])["driver"]["source"]
        == "procfs:/proc/driver/nvidia/version"
    )
    (root / "proc/driver/nvidia/version").unlink()
    assert gpu.collect(str(root), run, distributions=[])["driver"] == {
        "value": "535.104.05",
        "source": "nvidia-smi",
    }


def test_disagreeing_driver_versions_are_all_recorded_and_sysfs_wins(tmp_path):
    root = make_root(
        tmp_path,
        {
            "sys/module/nvidia/version": "535.113.01\n",
            "proc/driver/nvidia/version": PROCFS_535,
        },
    )
    result = gpu.collect(str(root), recorded(CASES / "gpu-a100-driver535"), distributions=[])
    assert result["driver"] == {"value": "535.113.01", "source": "sysfs:/sys/module/nvidia/version"}
    assert values(result, "driver") == [
        ("535.104.05", "nvidia-smi"),
        ("535.104.05", "procfs:/proc/driver/nvidia/version"),
        ("535.113.01", "sysfs:/sys/module/nvidia/version"),
    ]


def test_system_cudnn_header_and_a_different_cudnn_wheel_are_both_recorded():
    wheel = FakeDist("nvidia-cudnn-cu12", "9.3.0.75")
    result = detect("gpu-a100-driver535", distributions=[wheel])
    assert result["cudnn"]["value"] == "8.9.4"
    assert values(result, "cudnn") == [
        ("8.9.4", "header:/usr/include/x86_64-linux-gnu/cudnn_version.h"),
        ("8", "soname:/usr/lib/x86_64-linux-gnu/libcudnn.so.8"),
        ("9.3.0.75", "wheel:nvidia-cudnn-cu12==9.3.0.75"),
    ]


def test_cudnn_wheel_metadata_is_used_when_no_header_is_found():
    wheels = [FakeDist("nvidia-cudnn-cu11", "8.6.0.163"), FakeDist("numpy", "1.26.4")]
    result = detect("cpu-only", distributions=wheels)
    assert result["cudnn"] == {"value": "8.6.0.163", "source": "wheel:nvidia-cudnn-cu11==8.6.0.163"}
    assert [o["field"] for o in result["observations"]] == ["cudnn"]


def test_cudnn_wheel_header_outranks_its_metadata(tmp_path):
    include = tmp_path / "site/nvidia/cudnn/include"
    include.mkdir(parents=True)
    (include / "cudnn_version.h").write_text(CUDNN9_HEADER.replace("MINOR 1", "MINOR 3"))
    wheel = FakeDist(
        "nvidia-cudnn-cu12",
        "9.3.0.75",
        base=tmp_path / "site",
        files=["nvidia/cudnn/include/cudnn_version.h", "nvidia/cudnn/lib/libcudnn.so.9"],
    )
    result = detect("cpu-only", distributions=[wheel])
    header = str(include / "cudnn_version.h")
    assert result["cudnn"] == {"value": "9.3.0", "source": "header:" + header}
    assert values(result, "cudnn") == [
        ("9.3.0", "header:" + header),
        ("9.3.0.75", "wheel:nvidia-cudnn-cu12==9.3.0.75"),
    ]


def test_cudnn_soname_major_is_the_last_resort(tmp_path):
    root = make_root(tmp_path, {"usr/lib64/libcudnn.so.8": "", "usr/lib64/libcudnn.so": ""})
    result = gpu.collect(str(root), no_smi, distributions=[])
    assert result["cudnn"] == {"value": "8", "source": "soname:/usr/lib64/libcudnn.so.8"}


def test_cuda_runtime_wheel_outranks_the_library_file_name():
    wheels = [FakeDist("nvidia-cuda-runtime-cu12", "12.2.140"), FakeDist("nvidia_cuda_runtime", "13.0.48")]
    result = detect("gpu-a100-driver535", distributions=wheels)
    assert result["cuda_runtime"] == {
        "value": "12.2.140",
        "source": "wheel:nvidia-cuda-runtime-cu12==12.2.140",
    }
    assert ("13.0.48", "wheel:nvidia_cuda_runtime==13.0.48") in values(result, "cuda_runtime")
    assert ("12", "soname:/usr/local/cuda/lib64/libcudart.so.12") in values(result, "cuda_runtime")


def test_search_paths_and_cuda_environment_variables_are_searched_under_root(tmp_path, monkeypatch):
    root = make_root(
        tmp_path,
        {
            "opt/cudnn/include/cudnn_version.h": CUDNN9_HEADER,
            "opt/cudnn/lib64/libcudnn.so.9": "",
            "srv/extra/cudnn_version.h": CUDNN8_HEADER,
            "srv/libs/libcudart.so.11.8.89": "",
        },
    )
    monkeypatch.setenv("CUDNN_PATH", "/opt/cudnn")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/srv/libs::relative/ignored")
    result = gpu.collect(str(root), no_smi, search_paths=["/srv/extra", "not-absolute"], distributions=[])
    assert result["cudnn"] == {"value": "8.9.4", "source": "header:/srv/extra/cudnn_version.h"}
    assert values(result, "cudnn") == [
        ("9.1.0", "header:/opt/cudnn/include/cudnn_version.h"),
        ("8.9.4", "header:/srv/extra/cudnn_version.h"),
        ("9", "soname:/opt/cudnn/lib64/libcudnn.so.9"),
    ]
    assert result["cuda_runtime"] == {"value": "11.8.89", "source": "soname:/srv/libs/libcudart.so.11.8.89"}


def test_observations_are_sorted_by_field_then_source_without_repeats():
    wheel = FakeDist("nvidia-cudnn-cu12", "9.3.0.75")
    result = detect("gpu-a100-driver535", distributions=[wheel, wheel], search_paths=["/usr/include"])
    keys = [(o["field"], o["source"]) for o in result["observations"]]
    assert keys == sorted(keys)
    triples = [tuple(o.values()) for o in result["observations"]]
    assert len(triples) == len(set(triples))


# ---- garbage -----------------------------------------------------------------------------------


def test_garbage_everywhere_gives_a_cpu_result_without_raising(tmp_path):
    root = tmp_path
    (root / "sys/module/nvidia").mkdir(parents=True)
    (root / "sys/module/nvidia/version").write_bytes(b"\xff\xfe\x00garbage\n")
    (root / "proc/driver/nvidia/version").mkdir(parents=True)  # a directory where a file should be
    (root / "usr/include").mkdir(parents=True)
    (root / "usr/include/cudnn_version.h").write_bytes(b"#define CUDNN_MAJOR x\x00\xff")
    (root / "usr/include/cudnn.h").write_text("#include <cudnn_version.h>\n")  # cuDNN 8+: no macros here
    (root / "usr/lib64").write_text("not a directory")

    class Broken:
        @property
        def metadata(self) -> dict[str, str]:
            raise OSError("unreadable METADATA")

    def raising(argv: list[str]) -> tuple[int, str]:
        raise RuntimeError("boom")

    def broken_dists():
        yield FakeDist("nvidia-cudnn-cu12", "")
        raise OSError("site-packages vanished")

    for run in (raising, lambda argv: (0, "\x00\xff,,,\nNo devices were found\n"), lambda argv: None):
        result = gpu.collect(str(root), run, search_paths=["/\x00bad"], distributions=[Broken(), None])
        assert result == {"driver": None, "cuda_runtime": None, "cudnn": None, "gpus": [], "observations": []}
    assert gpu.collect(str(root), no_smi, distributions=broken_dists())["cudnn"] is None


def test_nvidia_smi_without_devices_lists_no_gpu_but_keeps_the_driver():
    def no_devices(argv: list[str]) -> tuple[int, str]:
        return 6, "No devices were found\n"

    result = detect("gpu-open-module-550", run=no_devices)
    assert result["gpus"] == []
    assert result["driver"]["value"] == "550.54.14"


# ---- parsers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("535.104.05\n", "535.104.05"),
        ("555.58", "555.58"),
        ("", None),
        ("NVIDIA\n", None),
        ("535.104.05 extra\n", None),
    ],
)
def test_sysfs_version_is_the_bare_version_line(text, expected):
    assert gpu.parse_sysfs_version(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PROCFS_535, "535.104.05"),
        (PROCFS_OPEN_550, "550.54.14"),
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.173.02  Tue Jun 23 08:38:17 UTC 2026\n"
            "GCC version:  gcc version 14.2.0 (Ubuntu 14.2.0-4ubuntu2~24.04.1)\n",
            "580.173.02",
        ),
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build  "
            "(dvs-builder@U16-A24-9-2)  Thu Oct 10 12:15:00 UTC 2024\n",
            "565.57.01",
        ),
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  35.3.1  Release Build  "
            "(buildbrain@mobile-u64-6289-d7000)  Sun Mar 19 08:09:33 PDT 2023\n",
            "35.3.1",
        ),
        ("GCC version:  gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04)\n", None),
        ("NVRM version: something else entirely\n", None),
        ("", None),
    ],
)
def test_procfs_version_reads_proprietary_and_open_kernel_modules(text, expected):
    assert gpu.parse_procfs_version(text) == expected


def test_nvidia_smi_rows_with_and_without_compute_capability():
    rows = gpu.parse_nvidia_smi((CASES / "gpu-a100-driver535/nvidia-smi.txt").read_text())
    assert rows[1] == {
        "index": 1,
        "name": "NVIDIA A100-SXM4-40GB",
        "driver": "535.104.05",
        "compute_capability": "8.0",
    }
    old = gpu.parse_nvidia_smi("0, Tesla T4, 470.182.03\n", with_compute_cap=False)
    assert old == [{"index": 0, "name": "Tesla T4", "driver": "470.182.03", "compute_capability": None}]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("0, NVIDIA H100 80GB HBM3, 550.54.14, 9.0", ("NVIDIA H100 80GB HBM3", "550.54.14", "9.0")),
        ("3, NVIDIA GeForce RTX 5090, 570.153.02, 12.0", ("NVIDIA GeForce RTX 5090", "570.153.02", "12.0")),
        ("0, Odd, Name, 535.104.05, 8.0", ("Odd, Name", "535.104.05", "8.0")),
        ("0, NVIDIA A100-SXM4-40GB, 535.104.05, [N/A]", ("NVIDIA A100-SXM4-40GB", "535.104.05", None)),
        ("0, NVIDIA A100-SXM4-40GB, [N/A], 8.0", ("NVIDIA A100-SXM4-40GB", None, "8.0")),
    ],
)
def test_nvidia_smi_row_fields(line, expected):
    (row,) = gpu.parse_nvidia_smi(line + "\n")
    assert (row["name"], row["driver"], row["compute_capability"]) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        'Field "compute_cap" is not a valid field to query.\n',
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
        "No devices were found\n",
        "index, name, driver_version, compute_cap\n",
        "x, GPU, 1.0, 8.0\n",
        "0, , 535.104.05, 8.0\n",
    ],
)
def test_nvidia_smi_lines_that_are_not_gpus_are_skipped(text):
    assert gpu.parse_nvidia_smi(text) == []


def test_only_the_compute_cap_error_triggers_the_retry():
    error = (CASES / "gpu-t4-driver470/nvidia-smi-compute_cap-error.txt").read_text()
    assert gpu.nvidia_smi_rejects_compute_cap(error)
    assert not gpu.nvidia_smi_rejects_compute_cap(
        "Failed to initialize NVML: Driver/library version mismatch"
    )
    assert not gpu.nvidia_smi_rejects_compute_cap("")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CUDNN8_HEADER, "8.9.4"),
        (CUDNN9_HEADER, "9.1.0"),
        (CUDNN7_CUDNN_H, "7.6.5"),
        ("#  define CUDNN_MAJOR 8 /* x */\n#define\tCUDNN_MINOR\t2\n#define CUDNN_PATCHLEVEL 1\n", "8.2.1"),
        ('#include "cudnn_version.h"\n#include "cudnn_ops_infer.h"\n', None),  # cuDNN 8's cudnn.h
        ("#define CUDNN_MAJOR 8\n#define CUDNN_MINOR 9\n", None),
        ("#define CUDNN_MAJOR_X 8\n#define CUDNN_MINOR 9\n#define CUDNN_PATCHLEVEL 4\n", None),
        ("// #define CUDNN_MAJOR 8\n#define CUDNN_MINOR 9\n#define CUDNN_PATCHLEVEL 4\n", None),
        ("\x00\xff garbage", None),
    ],
)
def test_cudnn_header_version_needs_major_minor_and_patchlevel(text, expected):
    assert gpu.parse_cudnn_header(text) == expected


@pytest.mark.parametrize(
    ("name", "prefix", "expected"),
    [
        ("libcudnn.so.8", "libcudnn.so.", "8"),
        ("libcudnn.so.8.9.4", "libcudnn.so.", "8.9.4"),
        ("libcudart.so.12.2.140", "libcudart.so.", "12.2.140"),
        ("libcudnn.so", "libcudnn.so.", None),
        ("libcudnn_ops.so.9", "libcudnn.so.", None),
        ("libcudnn.so.8.bak", "libcudnn.so.", None),
    ],
)
def test_library_version_comes_from_the_file_name(name, prefix, expected):
    assert gpu.parse_library_version(name, prefix) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nvidia-cudnn-cu12", "cudnn"),
        ("nvidia-cudnn-cu11", "cudnn"),
        ("nvidia_cudnn_cu13", "cudnn"),
        ("nvidia-cudnn", "cudnn"),
        ("nvidia-cuda-runtime-cu12", "cuda_runtime"),
        ("nvidia-cuda-runtime", "cuda_runtime"),
        ("nvidia-cudnn-frontend", None),
        ("nvidia-cuda-nvrtc-cu12", None),
        ("tensorflow", None),
    ],
)
def test_which_nvidia_wheels_count(name, expected):
    assert gpu.wheel_field(name) == expected


# ---- the module runs in other interpreters --------------------------------------------------------


def test_gpu_probe_imports_only_the_standard_library():
    tree = ast.parse(Path(gpu.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)


def _python38() -> str | None:
    pyenv = sorted(str(path) for path in Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))
    for candidate in [shutil.which("python3.8"), *pyenv]:
        if (
            candidate
            and subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0
        ):
            return candidate
    return None


def test_gpu_probe_runs_as_a_bare_script_module_on_python_3_8():
    python = _python38()
    if python is None:
        pytest.skip("no working python3.8 on this machine: the 3.8 compatibility of gpu.py is unchecked")
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import gpu; "
        "print(json.dumps(gpu.collect(root=sys.argv[2], run=lambda argv: (127, ''), distributions=[])))"
    )
    case = CASES / "gpu-open-module-550"
    proc = subprocess.run(
        [python, "-I", "-c", code, str(PROBE_DIR), str(case)], capture_output=True, text=True, check=True
    )
    assert json.loads(proc.stdout)["driver"] == {
        "value": "550.54.14",
        "source": "sysfs:/sys/module/nvidia/version",
    }


# ---- a real cuDNN wheel --------------------------------------------------------------------------


def _require_or_skip(reason: str) -> None:
    if os.environ.get("ENVREPRO_REQUIRE_INTEGRATION") == "1":
        pytest.fail(reason + " (ENVREPRO_REQUIRE_INTEGRATION=1)")
    pytest.skip("SKIPPED, NOT TESTED: " + reason)


@pytest.fixture(scope="session")
def cudnn_wheel_site() -> Path:
    """site-packages holding a real `pip install --no-deps nvidia-cudnn-cu12==9.3.0.75`.

    $ENVREPRO_CUDNN_WHEEL_SITE if set; else installed once (about 580 MB to download, 850 MB on disk)
    into the test-environment cache beside the TensorFlow environments, and reused.
    """
    given = os.environ.get("ENVREPRO_CUDNN_WHEEL_SITE")
    if given:
        return Path(given)
    cache = Path(os.environ.get("ENVREPRO_TEST_ENVS", Path.home() / ".cache" / "envrepro" / "test-envs"))
    site = cache / ("cudnn-wheel-" + CUDNN_WHEEL.split("==")[1])
    marker = site / ".envrepro-ready"
    if marker.exists():
        return site
    shutil.rmtree(site, ignore_errors=True)
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-cache-dir", "--no-compile"]
    proc = subprocess.run(
        [*argv, "--target", str(site), CUDNN_WHEEL], capture_output=True, text=True, timeout=1200, check=False
    )
    if proc.returncode != 0:
        _require_or_skip(f"could not install {CUDNN_WHEEL}: {proc.stderr.strip()[-500:]}")
    marker.write_text(CUDNN_WHEEL)
    return site


@pytest.mark.integration
def test_real_cudnn_wheel_metadata_and_its_bundled_header_are_read(cudnn_wheel_site):
    dists = list(metadata.distributions(path=[str(cudnn_wheel_site)]))
    if not any(dist.metadata["Name"] == "nvidia-cudnn-cu12" for dist in dists):
        _require_or_skip(f"no nvidia-cudnn-cu12 in {cudnn_wheel_site}")
    result = detect("cpu-only", distributions=dists)
    header = cudnn_wheel_site / "nvidia/cudnn/include/cudnn_version.h"
    assert result["cudnn"] == {"value": "9.3.0", "source": f"header:{header}"}
    assert values(result, "cudnn") == [
        ("9.3.0", f"header:{header}"),
        ("9.3.0.75", "wheel:nvidia-cudnn-cu12==9.3.0.75"),
    ]
