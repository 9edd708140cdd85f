"""NVIDIA GPU facts without TensorFlow: driver, CUDA runtime, cuDNN and the GPUs, each with its source.

Standard library only, Python 3.8+: this file is copied into the target interpreter and run there.
Nothing here raises for a missing file, a missing nvidia-smi or garbage contents: no GPU is a CPU result.

Every value seen is kept in "observations" (sorted by field, then source), so disagreements stay visible;
the chosen value of each field is the first by this precedence:
- driver: sysfs:/sys/module/nvidia/version, procfs:/proc/driver/nvidia/version, nvidia-smi
- cudnn: header (cudnn_version.h, or cudnn.h for cuDNN 7 and older), wheel metadata, library file name
- cuda_runtime: wheel metadata (nvidia-cuda-runtime*), library file name (libcudart.so.N[.M.P])
Headers are searched in: the given search paths, the cuDNN wheel's own include/, $CUDNN_PATH/include,
$CUDA_HOME/include, $CUDA_PATH/include, then the system directories; libraries likewise, with
$LD_LIBRARY_PATH. Within one directory the most specific library name comes first (libcudnn.so.8.9.4
before libcudnn.so.8). Paths in sources are as on the real machine, without the `root` prefix.
"""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
from importlib import metadata as _metadata
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

JsonDict = Dict[str, Any]
Runner = Callable[[List[str]], Tuple[int, str]]
# (rank, field, value, source): for one field, the lowest rank wins; ties go to the first found
Found = Tuple[int, str, str, str]
# (field, distribution name, version, distribution) of an nvidia-cudnn* / nvidia-cuda-runtime* wheel
Wheel = Tuple[str, str, str, Any]

SYSFS_VERSION = "/sys/module/nvidia/version"
PROCFS_VERSION = "/proc/driver/nvidia/version"
NVIDIA_SMI = "nvidia-smi"
SMI_FIELDS = "index,name,driver_version,compute_cap"
SMI_FIELDS_OLD = "index,name,driver_version"  # older drivers (e.g. 470) reject compute_cap
RUN_TIMEOUT_S = 10
MAX_READ = 1 << 20

HEADER_DIRS = (
    "/usr/include",
    "/usr/include/x86_64-linux-gnu",
    "/usr/include/aarch64-linux-gnu",
    "/usr/local/cuda/include",
)
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/local/cuda/lib64",
    "/usr/lib64",
)
HEADER_NAMES = ("cudnn_version.h", "cudnn.h")  # cuDNN 8+ / cuDNN 7 and older
LIBRARIES = (("cudnn", "libcudnn.so."), ("cuda_runtime", "libcudart.so."))
WHEEL_HEADER = "nvidia/cudnn/include/cudnn_version.h"
CUDA_HOMES = ("CUDNN_PATH", "CUDA_HOME", "CUDA_PATH")  # each may hold include/ and lib64/

_VERSION = r"\d+(?:\.\d+)+"
_VERSION_RE = re.compile(r"^(%s)$" % _VERSION)
# The NVRM line of the proprietary module reads "... UNIX x86_64 Kernel Module  535.104.05  <date>",
# the open module's "... UNIX Open Kernel Module for x86_64  550.54.14  Release Build  (<builder>)  <date>".
_PROCFS_RE = re.compile(r"^NVRM version:.*?Kernel Module(?:[ \t]+for[ \t]+\S+)?[ \t]+(%s)\b" % _VERSION, re.M)
_CC_RE = re.compile(r"^\d+\.\d+$")
_WHEELS = (
    (re.compile(r"^nvidia-cudnn(-cu\d+)?$"), "cudnn"),
    (re.compile(r"^nvidia-cuda-runtime(-cu\d+)?$"), "cuda_runtime"),
)
RANKS = {
    "driver": {"sysfs": 0, "procfs": 1, "nvidia-smi": 2},
    "cudnn": {"header": 0, "wheel": 1, "soname": 2},
    "cuda_runtime": {"wheel": 0, "soname": 1},
}


def collect(
    root: str = "/",
    run: Optional[Runner] = None,
    search_paths: Optional[Sequence[str]] = None,
    distributions: Optional[Iterable[Any]] = None,
) -> JsonDict:
    """Driver, CUDA runtime, cuDNN, GPUs and every observation behind them; nulls and [] on a CPU host."""
    wheels = _wheels(_installed() if distributions is None else distributions)
    rows = _nvidia_smi(run or run_command)
    found = _driver_files(root)
    found += [
        (RANKS["driver"]["nvidia-smi"], "driver", row["driver"], NVIDIA_SMI) for row in rows if row["driver"]
    ]
    found += _headers(root, search_paths or (), wheels)
    found += [
        (RANKS[field]["wheel"], field, version, "wheel:%s==%s" % (name, version))
        for field, name, version, _dist in wheels
    ]
    found += _libraries(root, search_paths or ())
    gpus = [_gpu(row) for row in rows]
    seen = [(field, value, source) for _rank, field, value, source in found]
    seen += [("gpu", _describe(gpu), gpu["source"]) for gpu in gpus]
    return {
        "driver": _choose(found, "driver"),
        "cuda_runtime": _choose(found, "cuda_runtime"),
        "cudnn": _choose(found, "cudnn"),
        "gpus": gpus,
        "observations": _observations(seen),
    }


# ---- pure parsers ------------------------------------------------------------------------------


def parse_sysfs_version(text: str) -> Optional[str]:
    """'535.104.05\\n' (the whole of /sys/module/nvidia/version) -> '535.104.05'."""
    match = _VERSION_RE.match(text.strip())
    return match.group(1) if match else None


def parse_procfs_version(text: str) -> Optional[str]:
    """The driver version in /proc/driver/nvidia/version's NVRM line (proprietary or open module)."""
    match = _PROCFS_RE.search(text)
    return match.group(1) if match else None


def parse_nvidia_smi(csv_text: str, with_compute_cap: bool = True) -> List[JsonDict]:
    """Rows of `--query-gpu=index,name,driver_version[,compute_cap] --format=csv,noheader`.

    Each row: {"index": int, "name": str, "driver": str | None, "compute_capability": str | None}.
    Lines that are not such a row (errors, garbage) are skipped.
    """
    rows = [_smi_row(line, with_compute_cap) for line in csv_text.splitlines()]
    return [row for row in rows if row is not None]


def _smi_row(line: str, with_compute_cap: bool) -> Optional[JsonDict]:
    parts = [part.strip() for part in line.split(",")]
    tail = 2 if with_compute_cap else 1
    if len(parts) < 2 + tail or not parts[0].isdigit():
        return None
    name = ", ".join(parts[1:-tail])
    if not name:
        return None
    driver = parts[-tail] if _VERSION_RE.match(parts[-tail]) else None
    capability = parts[-1] if with_compute_cap and _CC_RE.match(parts[-1]) else None
    return {"index": int(parts[0]), "name": name, "driver": driver, "compute_capability": capability}


def nvidia_smi_rejects_compute_cap(output: str) -> bool:
    """True for an old driver's 'Field "compute_cap" is not a valid field to query.'."""
    return "compute_cap" in output and "not a valid field" in output


def parse_cudnn_header(text: str) -> Optional[str]:
    """'8.9.4' from CUDNN_MAJOR/MINOR/PATCHLEVEL (cudnn_version.h, or cudnn.h up to cuDNN 7)."""
    parts = [_define(text, "CUDNN_" + name) for name in ("MAJOR", "MINOR", "PATCHLEVEL")]
    if any(part is None for part in parts):
        return None
    return ".".join(str(part) for part in parts)


def _define(text: str, name: str) -> Optional[int]:
    match = re.search(r"^[ \t]*#[ \t]*define[ \t]+%s[ \t]+(\d+)\b" % name, text, re.M)
    return int(match.group(1)) if match else None


def parse_library_version(filename: str, prefix: str) -> Optional[str]:
    """('libcudnn.so.8', 'libcudnn.so.') -> '8'; ('libcudart.so.12.2.140', 'libcudart.so.') -> '12.2.140'."""
    if not filename.startswith(prefix):
        return None
    rest = filename[len(prefix) :]
    return rest if re.match(r"^\d+(?:\.\d+)*$", rest) else None


def wheel_field(name: str) -> Optional[str]:
    """'nvidia-cudnn-cu12' -> 'cudnn'; 'nvidia_cuda_runtime_cu11' -> 'cuda_runtime'; others -> None."""
    key = re.sub(r"[-_.]+", "-", name).lower()
    return next((field for pattern, field in _WHEELS if pattern.match(key)), None)


# ---- the default runner ------------------------------------------------------------------------


def run_command(argv: List[str]) -> Tuple[int, str]:
    """(exit code, output) of argv; (127, '') when it cannot start, (124, '') after 10 s.

    On failure stderr is appended, so an error message is seen wherever the program printed it.
    """
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 124, ""
    except (OSError, ValueError, subprocess.SubprocessError):
        return 127, ""
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        out += proc.stderr.decode("utf-8", "replace")
    return proc.returncode, out


def _safe_run(run: Runner, argv: List[str]) -> Tuple[int, str]:
    try:
        result: Any = run(argv)
        code, out = result
    except Exception:  # noqa: BLE001 - an injected runner's failure is "no nvidia-smi", not a crash
        return 127, ""
    if not isinstance(code, int) or not isinstance(out, str):
        return 127, ""
    return code, out


# ---- sources -----------------------------------------------------------------------------------


def _nvidia_smi(run: Runner) -> List[JsonDict]:
    code, out = _safe_run(run, _smi_argv(SMI_FIELDS))
    if code == 0:
        return parse_nvidia_smi(out, with_compute_cap=True)
    if not nvidia_smi_rejects_compute_cap(out):
        return []
    code, out = _safe_run(run, _smi_argv(SMI_FIELDS_OLD))
    return parse_nvidia_smi(out, with_compute_cap=False) if code == 0 else []


def _smi_argv(fields: str) -> List[str]:
    return [NVIDIA_SMI, "--query-gpu=" + fields, "--format=csv,noheader"]


def _gpu(row: JsonDict) -> JsonDict:
    return {
        "index": row["index"],
        "name": row["name"],
        "compute_capability": row["compute_capability"],
        "source": NVIDIA_SMI,
    }


def _describe(gpu: JsonDict) -> str:
    capability = gpu["compute_capability"] or "unknown"
    return "%d: %s, compute capability %s" % (gpu["index"], gpu["name"], capability)


def _driver_files(root: str) -> List[Found]:
    found = []
    for kind, path, parse in (
        ("sysfs", SYSFS_VERSION, parse_sysfs_version),
        ("procfs", PROCFS_VERSION, parse_procfs_version),
    ):
        text = _read(_under(root, path))
        version = parse(text) if text is not None else None
        if version:
            found.append((RANKS["driver"][kind], "driver", version, "%s:%s" % (kind, path)))
    return found


def _headers(root: str, search_paths: Sequence[str], wheels: List[Wheel]) -> List[Found]:
    """cuDNN versions from headers, in search order (see the module docstring)."""
    places = _files_in(root, _absolute(search_paths), HEADER_NAMES)
    places += [(path, path) for path in _wheel_headers(wheels)]
    places += _files_in(root, _dirs_from_env("include") + list(HEADER_DIRS), HEADER_NAMES)
    found = []
    for real, shown in places:
        text = _read(real)
        version = parse_cudnn_header(text) if text is not None else None
        if version:
            found.append((RANKS["cudnn"]["header"], "cudnn", version, "header:" + shown))
    return found


def _files_in(root: str, dirs: List[str], names: Sequence[str]) -> List[Tuple[str, str]]:
    """(path to open, path as shown) for each name in each directory under root."""
    return [(posixpath.join(_under(root, d), n), posixpath.join(d, n)) for d in _unique(dirs) for n in names]


def _libraries(root: str, search_paths: Sequence[str]) -> List[Found]:
    dirs = _absolute(search_paths) + _absolute(_env_list("LD_LIBRARY_PATH"))
    dirs += _dirs_from_env("lib64") + list(LIBRARY_DIRS)
    found = []
    for directory in _unique(dirs):
        names = _listdir(_under(root, directory))
        for field, prefix in LIBRARIES:
            found += [
                (RANKS[field]["soname"], field, version, "soname:" + posixpath.join(directory, name))
                for version, name in _library_versions(names, prefix)
            ]
    return found


def _library_versions(names: List[str], prefix: str) -> List[Tuple[str, str]]:
    """(version, file name) of one library in one directory, the most specific name first."""
    pairs = [(parse_library_version(name, prefix) or "", name) for name in names]
    return sorted((pair for pair in pairs if pair[0]), key=lambda pair: (-pair[0].count("."), pair[1]))


def _installed() -> List[Any]:
    try:
        return list(_metadata.distributions())
    except Exception:  # noqa: BLE001 - a broken site-packages entry must not lose the GPU record
        return []


def _wheels(distributions: Iterable[Any]) -> List[Wheel]:
    """(field, name, version, dist) for each nvidia cuDNN / CUDA runtime wheel, in the order given."""
    wheels = []
    try:
        dists = list(distributions)
    except Exception:  # noqa: BLE001 - same as above
        return []
    for dist in dists:
        name, version = _name_version(dist)
        field = wheel_field(name) if name else None
        if field and version:
            wheels.append((field, name, version, dist))
    return wheels


def _name_version(dist: Any) -> Tuple[str, str]:
    try:
        name, version = dist.metadata["Name"], dist.version
    except Exception:  # noqa: BLE001 - broken metadata is skipped
        return "", ""
    if not isinstance(name, str) or not isinstance(version, str):
        return "", ""
    return name.strip(), version.strip()


def _wheel_headers(wheels: List[Wheel]) -> List[str]:
    """Where each cuDNN wheel keeps its cudnn_version.h (from its RECORD, else the usual place)."""
    return [path for field, _n, _v, dist in wheels if field == "cudnn" for path in _located_headers(dist)]


def _located_headers(dist: Any) -> List[str]:
    try:
        files = [str(item).replace("\\", "/") for item in (dist.files or [])]
    except Exception:  # noqa: BLE001 - a missing or broken RECORD
        files = []
    relative = [item for item in files if item.endswith("include/cudnn_version.h")] or [WHEEL_HEADER]
    paths = []
    for item in relative:
        try:
            paths.append(os.path.normpath(str(dist.locate_file(item))))
        except Exception:  # noqa: BLE001 - a dist-like object without files on disk
            continue
    return paths


# ---- small helpers -----------------------------------------------------------------------------


def _choose(found: List[Found], field: str) -> Optional[JsonDict]:
    ranked = sorted((item for item in found if item[1] == field), key=lambda item: item[0])
    return {"value": ranked[0][2], "source": ranked[0][3]} if ranked else None


def _observations(seen: List[Tuple[str, str, str]]) -> List[JsonDict]:
    unique = _unique(seen)
    ordered = sorted(unique, key=lambda item: (item[0], item[2]))  # stable: GPUs keep nvidia-smi's order
    return [{"field": field, "value": value, "source": source} for field, value, source in ordered]


def _under(root: str, path: str) -> str:
    if not root or root == "/":
        return path
    return posixpath.join(root, path.lstrip("/"))


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(MAX_READ)
    except (OSError, ValueError):
        return None


def _listdir(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except (OSError, ValueError):
        return []


def _env_list(name: str) -> List[str]:
    return [item for item in os.environ.get(name, "").split(os.pathsep) if item]


def _dirs_from_env(sub: str) -> List[str]:
    homes = [os.environ.get(name, "") for name in CUDA_HOMES]
    return _absolute([posixpath.join(home, sub) for home in homes if home])


def _absolute(paths: Iterable[str]) -> List[str]:
    return _unique(
        [posixpath.normpath(path) for path in paths if isinstance(path, str) and path.startswith("/")]
    )


def _unique(items: Iterable[Any]) -> List[Any]:
    seen: List[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
