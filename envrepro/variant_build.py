"""Bisect's package variants: a small image derived FROM the image under test, with the training pins of
some groups and the image's own pins for the rest, hash-locked like `envrepro build` and cached by content.

The tag is a digest of the base image's ID and the lock text, so the same variant of the same image is
built once: a rerun finds it (a cache hit, no build). Only the lock, render, context and engine stages are
used, as the build uses them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from envrepro.context import context_tar, write_context
from envrepro.engine_api import ContainerEngine
from envrepro.lock import compute_lock
from envrepro.render import UID, VENV, _environment, templates_dir
from envrepro.resolve import resolve
from envrepro.snapshot import Environment, Snapshot
from envrepro.target import BuildSecrets, Lock, Rendered, Requirement, Target

log = logging.getLogger(__name__)

VARIANT_TEMPLATE = "variant.Dockerfile.j2"
VARIANT_REPOSITORY = "envrepro-variant"
VARIANT_LABEL = "io.envrepro.variant.of"  # the image ID a variant was derived from

Locker = Callable[[Target, Path], Lock]


@dataclass(frozen=True)
class VariantImage:
    tag: str
    built: bool  # False: the engine already had it (a cache hit)


def variant_target(snap: Snapshot, image_env: Environment, image: str, pins: Mapping[str, str]) -> Target:
    """What the variant installs: the image's requirements with `pins` (training versions) put back."""
    base = resolve(
        snap.model_copy(update={"environment": image_env}),
        base_image=image,
        base_python=image_env.python.version,
    )
    kept = {req.name: req for req in base.requirements}
    for name, version in pins.items():
        kept[name] = Requirement(name=name, version=version)
    return replace(base, requirements=tuple(sorted(kept.values(), key=lambda r: r.name)))


def render_variant(image: str, image_id: str, lock: Lock) -> Rendered:
    template = _environment(templates_dir()).get_template(VARIANT_TEMPLATE)
    labels = [(VARIANT_LABEL, image_id), ("io.envrepro.variant.lock", lock.input_digest)]
    dockerfile = template.render(image=image, venv=VENV, uid=UID, labels=labels)
    files = (("Dockerfile", dockerfile.encode()), ("requirements.lock.txt", lock.text.encode()))
    return Rendered(files=tuple(sorted(files)))


def variant_tag(image_id: str, lock_text: str) -> str:
    digest = hashlib.sha256(f"{image_id}\n{lock_text}".encode()).hexdigest()
    return f"{VARIANT_REPOSITORY}:{digest[:16]}"


def lock_variant(engine: ContainerEngine, image: str, target: Target, locker: Locker) -> tuple[str, Lock]:
    """The image's ID and the variant's lock (kept in the cache directory: a rerun reuses it).

    A LockError says the pins cannot be installed together."""
    image_id = engine.inspect_image(image).image_id
    work = cache_dir() / hashlib.sha256(f"{image_id}\n{target.requirements}".encode()).hexdigest()[:16]
    return image_id, locker(target, work)


def build_variant(
    engine: ContainerEngine, image: str, image_id: str, lock: Lock, secrets: BuildSecrets
) -> VariantImage:
    """Render and build the variant, unless the engine already has it (its tag is its content)."""
    tag = variant_tag(image_id, lock.text)
    if engine.image_exists(tag):
        log.info("variant %s: already built (cache hit)", tag)
        return VariantImage(tag, built=False)
    work = cache_dir() / tag.rpartition(":")[2]
    ctx = write_context(render_variant(image, image_id, lock), secrets, work)
    log.info("building variant %s", tag)
    engine.build(context_tar(ctx), tag=tag)
    return VariantImage(tag, built=True)


def default_locker(secrets: BuildSecrets) -> Locker:
    def lock(target: Target, out_dir: Path) -> Lock:
        return compute_lock(target, out_dir, index=secrets)

    return lock


def cache_dir() -> Path:
    """Where variant locks are kept between runs (a rerun reuses them): $XDG_CACHE_HOME/envrepro/bisect."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "envrepro" / "bisect"
