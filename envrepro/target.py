"""Values that cross the build stages: resolve -> lock -> render -> context -> engine.

resolve(snapshot, options) -> Target           (envrepro/resolve.py)
lock(snapshot, target, options) -> Lock        (envrepro/lock.py)
render(target, lock) -> Rendered               (envrepro/render.py; pure, templates/ at the repo root)
context(rendered, extras) -> BuildContext      (envrepro/context.py; deterministic tar)
engine.build(context, tag, ...) -> BuiltImage  (envrepro/engine.py; the only module that imports docker)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TargetKind = Literal["cpu", "gpu"]
Variant = Literal["cpu", "gpu-wheels", "gpu-cuda-base", "custom-base"]

# The image platforms envrepro builds for -> what `uname -m` says inside their containers.
PLATFORM_ARCH = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
UID = 10001  # the non-root user the rendered images create; the probe's containers run as it


def default_image_tag(snapshot_digest: str) -> str:
    """The tag `envrepro build` gives an image and `envrepro parity` looks for: one per snapshot content."""
    return f"envrepro:{snapshot_digest[:12]}"


@dataclass(frozen=True)
class Requirement:
    """One distribution the image installs, as resolve decided it (after CPU/GPU and macOS substitutions)."""

    name: str  # normalised (PEP 503)
    version: str  # exact, local label kept (2.1.0+cu118)
    reproducible: bool = True  # False: not installable from an index (editable, local path, VCS URL)
    reason: str = ""  # why not reproducible, or why it was substituted ("tensorflow-macos -> tensorflow")


@dataclass(frozen=True)
class Target:
    """What image to build for a snapshot, and why."""

    kind: TargetKind
    variant: Variant
    reason: str  # one sentence: why CPU/GPU and this base
    base_image: str  # e.g. python:3.11.7-slim-bookworm, or the user's --base-image
    python_version: str  # exact x.y.z the image runs (snapshot's, or the base's)
    python_executable: str  # how the base runs python: "python3" or "/usr/local/bin/python"
    platform: str  # docker platform, e.g. linux/amd64
    pip_platforms: tuple[str, ...]  # wheel platform tags the lock is computed for
    cuda: str | None = None
    cudnn: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # numerics-relevant variables baked into the image
    labels: tuple[tuple[str, str], ...] = ()  # OCI labels + io.envrepro.snapshot.digest
    warnings: tuple[str, ...] = ()
    requirements: tuple[Requirement, ...] = ()  # sorted by name: what the lock pins and hashes
    dropped: tuple[tuple[str, str], ...] = ()  # (name, why) left out on purpose (pip, tensorflow-metal...)


@dataclass(frozen=True)
class LockedRequirement:
    name: str
    version: str
    hashes: tuple[str, ...]  # "sha256:..." for the target platform's files


@dataclass(frozen=True)
class Lock:
    """The pinned, hashed requirements for the image (pip-tools output), and what was left out."""

    text: str  # requirements.lock.txt content, deterministic
    requirements: tuple[LockedRequirement, ...]
    excluded: tuple[tuple[str, str], ...] = ()  # (name, why) not installable from an index
    input_digest: str = ""  # sha256 of the lock inputs; equal digest -> reuse the lock


@dataclass(frozen=True)
class Rendered:
    """Files of the build directory, by relative path (Dockerfile, requirements.lock.txt, ...)."""

    files: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class BuildSecrets:
    """Host pip configuration forwarded to the builder stage only, never to the final image."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    ca_bundle: bytes | None = None
    trusted_hosts: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class BuiltImage:
    image_id: str
    size_bytes: int
    tags: tuple[str, ...]
