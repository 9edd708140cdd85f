"""Read the environment of the interpreter running this file. Standard library only, Python 3.8+.

Each collect_* function returns a JSON-ready dict; nothing here imports TensorFlow (see tfprobe.py).
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import sysconfig
from importlib import metadata as _metadata
from typing import Any, Dict, Iterable, List, Optional

# CPU features that select different kernels in TensorFlow / oneDNN / Eigen (x86 and Arm).
INTERESTING_CPU_FLAGS = (
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512cd",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "amx_fp16",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)

JsonDict = Dict[str, Any]


def collect_python() -> JsonDict:
    """Interpreter identity: exact version, implementation, ABI, and the platform tags it accepts."""
    impl = sys.implementation.name
    version = "%d.%d.%d" % sys.version_info[:3]
    abi = _abi_tag()
    return {
        "version": version,
        "implementation": platform.python_implementation(),
        "abi_tag": abi,
        "soabi": sysconfig.get_config_var("SOABI") or "",
        "executable": sys.executable,
        "prefix": sys.prefix,
        "is_virtualenv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
        "platform_tags": platform_tags(platform.system(), platform.machine(), _libc()),
        "interpreter_tag": ("cp" if impl == "cpython" else impl[:2]) + "%d%d" % sys.version_info[:2],
    }


def _abi_tag() -> str:
    soabi = sysconfig.get_config_var("SOABI") or ""
    match = re.match(r"cpython-(\d+)(t?)", soabi)
    if match:
        return "cp" + match.group(1) + match.group(2)
    return "cp%d%d" % sys.version_info[:2] if sys.implementation.name == "cpython" else "none"


def _libc() -> JsonDict:
    name, version = platform.libc_ver()
    if not name and sys.platform.startswith("linux"):
        name = "musl" if _is_musl() else ""
    return {"name": name, "version": version}


def _is_musl() -> bool:
    exe = sys.executable or ""
    try:
        with open(exe, "rb") as handle:
            return b"musl" in handle.read(4096 * 4)
    except OSError:
        return False


def platform_tags(system: str, machine: str, libc: JsonDict) -> List[str]:
    """The wheel platform tags this environment accepts, most specific first (a compact PEP 600 view)."""
    arch = machine.lower().replace("-", "_").replace(" ", "_")
    if arch == "amd64":
        arch = "x86_64"
    if arch == "arm64" and system == "Linux":
        arch = "aarch64"
    if system == "Linux":
        return _linux_tags(arch, libc)
    if system == "Darwin":
        return _mac_tags(arch)
    if system == "Windows":
        return ["win_amd64" if arch == "x86_64" else "win_" + arch]
    return [system.lower() + "_" + arch]


def _linux_tags(arch: str, libc: JsonDict) -> List[str]:
    match = re.match(r"(\d+)\.(\d+)", libc.get("version") or "")
    if libc.get("name") == "glibc" and match:
        major, minor = int(match.group(1)), int(match.group(2))
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags = []
        for glibc_minor in range(minor, 4, -1):
            tags.append("manylinux_%d_%d_%s" % (major, glibc_minor, arch))
            if (glibc_minor in legacy and arch in ("x86_64", "i686")) or (
                glibc_minor == 17 and arch in ("aarch64", "ppc64le", "s390x", "armv7l")
            ):
                tags.append("%s_%s" % (legacy[glibc_minor], arch))
        return tags + ["linux_" + arch]
    if libc.get("name") == "musl":
        return ["musllinux_1_2_" + arch, "musllinux_1_1_" + arch, "linux_" + arch]
    return ["linux_" + arch]


def _mac_tags(arch: str) -> List[str]:
    release = platform.mac_ver()[0] or "11.0"
    major = int(release.split(".")[0])
    tags = []
    for version in range(major, 10, -1):
        tags.append("macosx_%d_0_%s" % (version, arch))
        tags.append("macosx_%d_0_universal2" % version)
    return tags


def collect_os() -> JsonDict:
    """Distribution, libc, kernel, architecture, and whether this runs inside a container."""
    return {
        "system": platform.system(),
        "distribution": _os_release(),
        "libc": _libc(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "container": _container(),
    }


def _os_release() -> JsonDict:
    if sys.platform == "darwin":
        return {
            "id": "macos",
            "version_id": platform.mac_ver()[0],
            "pretty_name": "macOS " + platform.mac_ver()[0],
        }
    fields: Dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        text = _read(path)
        if text:
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    fields[key.strip()] = value.strip().strip("\"'")
            break
    return {
        "id": fields.get("ID", ""),
        "version_id": fields.get("VERSION_ID", ""),
        "pretty_name": fields.get("PRETTY_NAME", ""),
    }


def _container() -> JsonDict:
    evidence = []
    if os.path.exists("/.dockerenv"):
        evidence.append("/.dockerenv")
    if os.path.exists("/run/.containerenv"):
        evidence.append("/run/.containerenv")
    cgroup = _read("/proc/1/cgroup") or ""
    for word in ("docker", "kubepods", "containerd", "libpod", "lxc"):
        if word in cgroup:
            evidence.append("/proc/1/cgroup:" + word)
            break
    return {"detected": bool(evidence), "evidence": evidence}


def collect_cpu(cpuinfo_path: str = "/proc/cpuinfo") -> JsonDict:
    """CPU model, vendor, logical CPU count and the vector-instruction flags that change kernels."""
    text = _read(cpuinfo_path) or ""
    fields = _cpuinfo_first_block(text)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    model = fields.get("model name") or fields.get("Model") or fields.get("CPU part") or ""
    vendor = fields.get("vendor_id") or fields.get("CPU implementer") or ""
    if sys.platform == "darwin":
        model, vendor, flags = _mac_cpu()
    return {
        "model": model,
        "vendor": vendor,
        "logical_cpus": os.cpu_count() or 0,
        "flags": sorted(flag for flag in INTERESTING_CPU_FLAGS if flag in flags),
    }


def _cpuinfo_first_block(text: str) -> Dict[str, str]:
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields.get("flags") or fields.get("Features"):
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _mac_cpu() -> "tuple[str, str, set[str]]":  # pragma: no cover - exercised on macOS only
    import subprocess

    def sysctl(name: str) -> str:
        try:
            out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip()

    brand = sysctl("machdep.cpu.brand_string")
    features = (sysctl("machdep.cpu.features") + " " + sysctl("machdep.cpu.leaf7_features")).lower()
    flags = set(features.replace(".", "_").split())
    if platform.machine() == "arm64":
        flags.update({"asimd"})
        if sysctl("hw.optional.arm.FEAT_BF16") == "1":
            flags.add("bf16")
        if sysctl("hw.optional.arm.FEAT_I8MM") == "1":
            flags.add("i8mm")
    return brand, "Apple" if "Apple" in brand else "", flags


def collect_env(names: Iterable[str]) -> JsonDict:
    """Only the named (numerics-relevant) variables that are set; nothing else from the environment."""
    return {name: os.environ[name] for name in sorted(set(names)) if name in os.environ}


def collect_distributions(path: Optional[List[str]] = None) -> List[JsonDict]:
    """Every installed distribution visible on sys.path, first one wins (as for imports)."""
    seen: Dict[str, JsonDict] = {}
    dists = _metadata.distributions(path=path) if path is not None else _metadata.distributions()
    for dist in dists:
        name = dist.metadata["Name"] if dist.metadata else None
        if not name:
            continue
        key = normalize_name(name)
        if key in seen:
            continue
        seen[key] = {
            "name": name,
            "version": dist.version,
            "installer": (_dist_text(dist, "INSTALLER") or "").strip(),
            "requested": _dist_text(dist, "REQUESTED") is not None,
            "origin": classify_origin(_dist_text(dist, "direct_url.json")),
        }
    return [seen[key] for key in sorted(seen)]


def normalize_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_text(dist: Any, filename: str) -> Optional[str]:
    try:
        return dist.read_text(filename)  # type: ignore[no-any-return]
    except (OSError, UnicodeDecodeError):
        return None


def classify_origin(direct_url_json: Optional[str]) -> JsonDict:
    """How a distribution was installed, from its PEP 610 direct_url.json (absent: from an index)."""
    if not direct_url_json:
        return {"kind": "index", "url": "", "detail": ""}
    try:
        data = json.loads(direct_url_json)
    except ValueError:
        return {"kind": "unknown", "url": "", "detail": "unreadable direct_url.json"}
    url = str(data.get("url", ""))
    if "vcs_info" in data:
        vcs = data["vcs_info"]
        detail = "%s @ %s" % (vcs.get("vcs", "vcs"), vcs.get("commit_id", "?"))
        return {"kind": "vcs", "url": url, "detail": detail}
    if data.get("dir_info", {}).get("editable"):
        return {"kind": "editable", "url": url, "detail": "installed with pip install -e"}
    if url.startswith("file:"):
        return {"kind": "local", "url": url, "detail": "installed from a local path"}
    hashes = data.get("archive_info", {}).get("hashes") or {}
    detail = ",".join("%s=%s" % item for item in sorted(hashes.items()))
    return {"kind": "url", "url": url, "detail": detail}


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None
