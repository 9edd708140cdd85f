"""Bisect's package variants: a small image derived FROM the image under test that changes only the
distributions of the groups it returns: their training pins installed, what training did not have
uninstalled, every other distribution the image's own. The pins are checked by a full lock (the training
pins of those groups and the image's pins for the rest, resolved and hash-locked like `envrepro build`,
kept in cache_dir()), and only the entries of that lock the image does not have are installed.

Two images, both small over what they share (the engine's legacy builder has no RUN --mount and no
--squash, so a download-install-delete in one layer would put the pip configuration in the variant):
- the files image (templates/variant-files.Dockerfile.j2): a builder stage FROM the image, the only one
  that sees the pip configuration, installs the changed distributions with --require-hashes --no-deps
  into a prefix of their own; the image itself is FROM scratch with that prefix alone. Its tag is a digest
  of the lock (which covers the Python and platform) and the entries installed, not of the image: a
  variant of a rebuilt image with the same Python and pins reuses it. Kept as a cache (it is not a
  variant), like the locks;
- the variant (templates/variant.Dockerfile.j2), FROM the image: uninstalls the image's versions and what
  training did not have (a layer of deletions only), COPYs the files image over the venv (a layer of the
  new files only), the image's user again. Its tag is a digest of the image's ID and its Dockerfile (which
  names the files image by its content tag): the same variant of the same image is built once.
So nothing but the changed distributions differs from the image.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from envrepro.context import context_tar, write_context
from envrepro.engine_api import ContainerEngine, build_image
from envrepro.errors import LockError, UnsafeValueError
from envrepro.fsutil import write_atomic
from envrepro.grammar import distribution_name, shown
from envrepro.inventory import VARIANT_FILES_LABEL, VARIANT_OF_LABEL
from envrepro.lock import compute_lock
from envrepro.lock_io import lock_entry
from envrepro.render import VENV, _environment, templates_dir
from envrepro.resolve import resolve
from envrepro.snapshot import Environment, Snapshot
from envrepro.target import UID, BuildSecrets, Lock, LockedRequirement, Rendered, Requirement, Target
from envrepro.variants import installers

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

VARIANT_TEMPLATE = "variant.Dockerfile.j2"
FILES_TEMPLATE = "variant-files.Dockerfile.j2"
FILES_REPOSITORY = "envrepro-variant-files"  # the changed distributions alone, cached by content
FILES_LABEL = VARIANT_FILES_LABEL  # `envrepro images` lists the files images by it
VARIANT_LOCK = "variant.lock.txt"  # the changed distributions only, hashed
VARIANT_REPOSITORY = "envrepro-variant"
VARIANT_LABEL = VARIANT_OF_LABEL  # the image ID a variant was derived from
UNINSTALLER = (Path(__file__).parent / "image_uninstall.py").read_text(encoding="utf-8")  # run in the variant
BUILDER_LABEL = "io.envrepro.variant.builder"  # the builder stage's image: removed once the variant is built

Locker = Callable[[Target, Path], Lock]


@dataclass(frozen=True)
class VariantImage:
    tag: str
    built: bool  # False: the engine already had it (a cache hit)


@dataclass(frozen=True)
class VariantPlan:
    """What a derived image changes in the image: all that differs between the two."""

    install: tuple[LockedRequirement, ...]  # the training pins, hashed, from the variant's full lock
    remove: tuple[str, ...]  # uninstalled first: the image's versions of those, and what training lacked
    lock_digest: str  # the full lock's input digest (a label of the variant)
    platform: str = ""  # what the files are installed for: platform_key() of the lock's target


def variant_target(
    snap: Snapshot, image_env: Environment, image: str, pins: Mapping[str, str], removed: Sequence[str] = ()
) -> Target:
    """What the variant's lock pins: the image's requirements with `pins` (training versions) put back and
    `removed` (distributions training did not have) left out."""
    base = resolve(
        snap.model_copy(update={"environment": image_env}),
        base_image=image,
        base_python=image_env.python.version,
    )
    kept = {req.name: req for req in base.requirements if req.name not in removed}
    for name, version in pins.items():
        kept[name] = Requirement(name=name, version=version)
    return replace(base, requirements=tuple(sorted(kept.values(), key=lambda r: r.name)))


def platform_key(target: Target) -> str:
    """The Python and platform a lock was computed for: what else decides the files a pin installs."""
    return hashlib.sha256(
        repr((target.python_version, target.platform, target.pip_platforms)).encode()
    ).hexdigest()


def plan_variant(
    lock: Lock,
    pins: Mapping[str, str],
    removed: Sequence[str],
    image_versions: Mapping[str, str],
    platform: str = "",
) -> VariantPlan:
    """What the variant changes: every entry of the lock the image does not have at that version (the
    training pins, and what the resolver added for them that the image lacks), and the image's versions
    of those and `removed` to uninstall. The installers (pip, setuptools, wheel) stay the image's.
    LockError when the lock does not hold a pin as asked."""
    locked = {req.name: req for req in lock.requirements}
    wrong = sorted(name for name, version in pins.items() if locked.get(name, _NONE).version != version)
    if wrong:
        raise LockError(wrong[0], "the variant's lock does not hold the training pin")
    skip = set(installers())
    install = [r for r in lock.requirements if r.name not in skip and image_versions.get(r.name) != r.version]
    added = sorted({r.name for r in install} - set(pins))
    if added:
        log.info("the training pins need %s, which the image lacks or has at another version", added)
    remove = sorted({*removed, *(r.name for r in install if r.name in image_versions)})
    entries = tuple(sorted(install, key=lambda r: r.name))
    return VariantPlan(entries, tuple(remove), lock.input_digest, platform)


_NONE = LockedRequirement("", "", ())


def render_files(image: str, plan: VariantPlan) -> Rendered:
    """The files image's build: the changed distributions installed into a prefix, alone."""
    text = _template(FILES_TEMPLATE).render(
        image=image, venv=VENV, labels=[(FILES_LABEL, files_tag(plan))],
        builder_label=(BUILDER_LABEL, files_tag(plan)),
    )  # fmt: skip
    lines = [line for req in plan.install for line in lock_entry(req)]
    return Rendered(files=(("Dockerfile", text.encode()), (VARIANT_LOCK, ("\n".join(lines) + "\n").encode())))


def files_tag(plan: VariantPlan) -> str:
    """The files image's content: the entries installed, the Python and platform the lock was computed
    for, and the template; not the image nor the rest of the lock, so another set of groups that installs
    the same, or another image of the same Python, reuses it."""
    digest = hashlib.sha256(plan.platform.encode())
    for line in (
        *(f"{r.name}=={r.version} {r.hashes}" for r in plan.install),
        _template_text(FILES_TEMPLATE),
    ):
        digest.update(b"\0" + line.encode())
    return f"{FILES_REPOSITORY}:{digest.hexdigest()[:16]}"


def render_variant(image: str, image_id: str, plan: VariantPlan) -> Rendered:
    """The variant's build: FROM the image, the image's versions uninstalled, the files image copied in."""
    files = files_tag(plan) if plan.install else ""
    # Only what the variant holds (not the full lock): two sets of groups that change the same get one tag
    labels = [(VARIANT_LABEL, image_id), *([(FILES_LABEL, files)] if files else [])]
    remove = [_name(name) for name in plan.remove]
    text = _template(VARIANT_TEMPLATE).render(
        image=image, venv=VENV, uid=UID, labels=labels, files=files, remove=remove, uninstaller=UNINSTALLER
    )
    return Rendered(files=(("Dockerfile", text.encode()),))


def _template(name: str) -> jinja2.Template:
    return _environment(templates_dir()).get_template(name)


def _template_text(name: str) -> str:
    return (templates_dir() / name).read_text(encoding="utf-8")


def _name(value: str) -> str:
    """A distribution name for pip's command line: PEP 508 (never an option), else refused."""
    try:
        return distribution_name(value)
    except ValueError as exc:
        raise UnsafeValueError("a distribution name", shown(value), str(exc)) from None


def variant_tag(image_id: str, rendered: Rendered) -> str:
    """The variant's content: the image it derives from and every file its build reads."""
    digest = hashlib.sha256(image_id.encode())
    for name, data in rendered.files:
        digest.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(data).digest())
    return f"{VARIANT_REPOSITORY}:{digest.hexdigest()[:16]}"


def lock_variant(engine: ContainerEngine, image: str, target: Target, locker: Locker) -> tuple[str, Lock]:
    """The image's ID and the variant's lock (kept in the cache directory by what decides it, not by the
    image: a rerun, or a rebuild of the image with the same Python and pins, reuses it).

    A LockError says the pins cannot be installed together."""
    image_id = engine.inspect_image(image).image_id
    inputs = (target.python_version, target.platform, target.pip_platforms, target.requirements)
    work = cache_dir() / hashlib.sha256(repr(inputs).encode()).hexdigest()[:16]  # the lock's own inputs
    return image_id, _lock_or_known_conflict(target, work, locker)


CONFLICT_FILE = "conflict.json"  # beside a variant's lock: the resolver's conflict, when it found one


def _lock_or_known_conflict(target: Target, work: Path, locker: Locker) -> Lock:
    """The lock, unless an earlier run found these exact pins in conflict: a conflict among `==` pins is
    a fact of their published metadata, so it is kept beside the lock and raised again without resolving
    (a search meets the same ones on every rerun). Any other failure (the index, the network) is not."""
    known = work / CONFLICT_FILE
    try:
        kept = json.loads(known.read_text(encoding="utf-8"))
        error = LockError(kept.get("requirement"), str(kept["detail"]), conflict=True)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    else:
        log.info("lock inputs unchanged: the conflict an earlier run found (%s)", known)
        raise error
    try:
        return locker(target, work)
    except LockError as exc:
        if exc.conflict:
            known.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(known, json.dumps({"requirement": exc.requirement, "detail": exc.detail}) + "\n")
        raise


def build_variant(
    engine: ContainerEngine, image: str, image_id: str, plan: VariantPlan, secrets: BuildSecrets
) -> VariantImage:
    """Render and build the variant, unless the engine already has it (its tag is its content); its files
    image first, unless the engine has that (a variant of another image with the same Python built it)."""
    rendered = render_variant(image, image_id, plan)
    tag = variant_tag(image_id, rendered)
    if engine.image_exists(tag):
        log.info("variant %s: already built (cache hit)", tag)
        return VariantImage(tag, built=False)
    if plan.install:
        _build_files(engine, image, plan, secrets)
    log.info("building variant %s", tag)
    _build(engine, rendered, BuildSecrets(), tag)  # no pip configuration: nothing here runs pip install
    return VariantImage(tag, built=True)


def _build_files(engine: ContainerEngine, image: str, plan: VariantPlan, secrets: BuildSecrets) -> None:
    tag = files_tag(plan)
    if engine.image_exists(tag):
        log.info("variant files %s: already built (cache hit)", tag)
        return
    log.info("building variant files %s", tag)
    _build(engine, render_files(image, plan), secrets, tag)
    for stage in engine.list_images(f"{BUILDER_LABEL}={tag}"):
        engine.remove_image(stage.image_id)  # the legacy builder keeps it; a rerun hits the files' tag


def _build(engine: ContainerEngine, rendered: Rendered, secrets: BuildSecrets, tag: str) -> None:
    ctx = write_context(rendered, secrets, cache_dir() / tag.replace(":", "-"))
    build_image(engine, context_tar(ctx), tag=tag)


def default_locker(secrets: BuildSecrets) -> Locker:
    def lock(target: Target, out_dir: Path) -> Lock:
        return compute_lock(target, out_dir, index=secrets)

    return lock


def cache_dir() -> Path:
    """Where variant locks are kept between runs (a rerun reuses them): $XDG_CACHE_HOME/envrepro/bisect."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "envrepro" / "bisect"
