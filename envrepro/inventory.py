"""What envrepro built on the engine: list it (`envrepro images`), remove what is no longer needed (`envrepro
clean`), and retire the tag that a rebuild of the same snapshot file replaced (`envrepro build`).

Images are found by envrepro's own labels, never by name: every final image carries the snapshot digest,
the snapshot file's name and a hash of its absolute path (`snapshot_path_labels`); the last image of the
builder stage carries `io.envrepro.stage=builder` and the digest (templates/Dockerfile.j2).

`envrepro bisect` leaves two kinds of its own (variant_build.py): the variants kept with `--keep` (FROM a
build, so they inherit its labels; they carry `io.envrepro.variant.of`), and the files images, its cache
of changed distributions (FROM scratch, `io.envrepro.variant.files`), which the next bisect reuses. They
are listed apart from the builds, never as newer builds of the same snapshot file.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Literal

from envrepro.engine_api import RUN_LABEL, ContainerEngine, ContainerRecord, ImageRecord
from envrepro.errors import DurationError, ImageInUseError
from envrepro.target import BuiltImage, Target

log = logging.getLogger(__name__)

DIGEST_LABEL = "io.envrepro.snapshot.digest"  # every final image (resolve.image_labels)
FILE_LABEL = "io.envrepro.snapshot.file"  # the snapshot's file name: shown, never used to match
PATH_LABEL = "io.envrepro.snapshot.path"  # sha256 of the snapshot's absolute path: which builds replace which
BUILDER_LABEL = "io.envrepro.stage=builder"
BUILDER_DIGEST_LABEL = "io.envrepro.builder.snapshot.digest"
DEFAULT_TAG_PREFIX = "envrepro:"  # target.default_image_tag
# bisect's variants are FROM a build, so they inherit its labels: they are not builds of its snapshot
VARIANT_OF_LABEL = "io.envrepro.variant.of"
VARIANT_FILES_LABEL = "io.envrepro.variant.files"  # a files image (and a variant built from one)
STAGE_LABEL = "io.envrepro.stage"  # "builder": a builder stage's image, a build's or a files image's

# A container of an envrepro run that was not removed (the process was killed with SIGKILL, the machine
# went down): stopped this long ago, it belongs to no live run (parity reads a container's output at once).
LEFT_BEHIND_S = 600.0
NEVER_STARTED_S = 3600.0  # created, never started: a live run starts its container right after creating it
_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def snapshot_path_labels(snapshot_path: Path) -> tuple[tuple[str, str], ...]:
    """Labels that say which snapshot file an image was built from, without putting the host path in it.

    The file name alone would match every project's `envrepro.lock.json`; the absolute path would publish
    user and directory names in a shareable image. A hash of the absolute path identifies the file and
    reveals nothing to anyone who does not already know the path."""
    absolute = str(snapshot_path.resolve())
    path_id = "sha256:" + hashlib.sha256(absolute.encode()).hexdigest()
    return ((FILE_LABEL, snapshot_path.name), (PATH_LABEL, path_id))


def with_snapshot_path(target: Target, snapshot_path: Path) -> Target:
    """`target` with the snapshot-file labels added to the image's labels."""
    return replace(target, labels=tuple(sorted({*target.labels, *snapshot_path_labels(snapshot_path)})))


def parse_duration(text: str) -> timedelta:
    """`30m`, `12h`, `7d`, `2w` -> a timedelta; anything else (0, 1.5d, 7, 7 d, -1h) is a DurationError."""
    found = _DURATION.fullmatch(text)
    if found is None:
        raise DurationError(text)
    return timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)])


# --- the inventory ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inventory:
    images: tuple[EnvreproImage, ...]  # newest first
    builders: tuple[BuilderCache, ...]  # newest first
    bisect: tuple[BisectImage, ...] = ()  # newest first
    left_behind: tuple[ContainerRecord, ...] = ()  # stopped containers of envrepro runs, oldest first


@dataclass(frozen=True)
class EnvreproImage:
    record: ImageRecord
    digest: str
    snapshot_file: str | None
    path_id: str | None
    replaced: bool  # no tag left, or a later build from the same snapshot file exists
    replaced_by: str | None  # the ID of that later build, when there is one
    in_use: bool  # a container (running or stopped) was created from it

    @property
    def user_tags(self) -> tuple[str, ...]:
        return tuple(tag for tag in self.record.tags if not tag.startswith(DEFAULT_TAG_PREFIX))


@dataclass(frozen=True)
class BuilderCache:
    record: ImageRecord
    digest: str
    in_use: bool


@dataclass(frozen=True)
class BisectImage:
    """A variant `envrepro bisect --keep` left, or one of its files images (its cache)."""

    record: ImageRecord
    kind: Literal["variant", "files"]
    variant_of: str | None  # a variant: the ID of the image it was derived from
    orphaned: bool  # a variant whose image is no longer on the engine
    in_use: bool


def take_inventory(engine: ContainerEngine, now: float | None = None) -> Inventory:
    """Every final image, builder-stage image and bisect image envrepro's labels mark on this engine, and
    the containers its runs left behind. An image only those containers use is not "in use": `clean`
    removes them first."""
    left = left_behind(engine, time.time() if now is None else now)
    labelled = engine.list_images(DIGEST_LABEL)
    records = _newest_first([record for record in labelled if _is_build(record)])
    in_use = engine.images_used_by_containers(frozenset(c.container_id for c in left))
    images = tuple(_image(record, records, in_use) for record in records)
    builders = tuple(
        BuilderCache(record, record.labels.get(BUILDER_DIGEST_LABEL, ""), record.image_id in in_use)
        for record in _newest_first(engine.list_images(BUILDER_LABEL))
    )
    return Inventory(images, builders, _bisect_images(engine, in_use), left)


def left_behind(engine: ContainerEngine, now: float) -> tuple[ContainerRecord, ...]:
    """Containers envrepro runs label (`io.envrepro.run`) that ended LEFT_BEHIND_S ago or more, or were
    created NEVER_STARTED_S ago and never started: what a killed run leaves. Running ones never."""

    def left(container: ContainerRecord) -> bool:
        if container.state in ("exited", "dead"):
            return now - (container.finished or container.created) >= LEFT_BEHIND_S
        return container.state == "created" and now - container.created >= NEVER_STARTED_S

    found = [container for container in engine.list_containers(RUN_LABEL) if left(container)]
    return tuple(sorted(found, key=lambda c: (c.created, c.container_id)))


def _is_build(record: ImageRecord) -> bool:
    """A final image of `envrepro build`: not a bisect variant, nor a builder stage FROM a build (a files
    image's), which inherit the build's snapshot labels."""
    return VARIANT_OF_LABEL not in record.labels and STAGE_LABEL not in record.labels


def _bisect_images(engine: ContainerEngine, in_use: frozenset[str]) -> tuple[BisectImage, ...]:
    variants = engine.list_images(VARIANT_OF_LABEL)
    variant_ids = {record.image_id for record in variants}
    files = [
        record
        for record in engine.list_images(VARIANT_FILES_LABEL)
        if record.image_id not in variant_ids and STAGE_LABEL not in record.labels
    ]
    sources = {record.labels[VARIANT_OF_LABEL] for record in variants}  # bisect takes any image: ask
    present = {source for source in sources if engine.image_exists(source)}
    found = [
        BisectImage(record, "variant", record.labels[VARIANT_OF_LABEL],
                    record.labels[VARIANT_OF_LABEL] not in present, record.image_id in in_use)
        for record in variants
    ]  # fmt: skip
    found += [BisectImage(record, "files", None, False, record.image_id in in_use) for record in files]
    return tuple(sorted(found, key=lambda b: (-b.record.created, b.record.image_id)))


def _newest_first(records: Sequence[ImageRecord]) -> list[ImageRecord]:
    return sorted(records, key=lambda r: (-r.created, r.image_id))


def _image(record: ImageRecord, records: Sequence[ImageRecord], in_use: frozenset[str]) -> EnvreproImage:
    path_id = record.labels.get(PATH_LABEL)
    later = [
        other
        for other in records
        if path_id and other.labels.get(PATH_LABEL) == path_id and other.created > record.created
    ]
    return EnvreproImage(
        record=record,
        digest=record.labels.get(DIGEST_LABEL, ""),
        snapshot_file=record.labels.get(FILE_LABEL),
        path_id=path_id,
        replaced=bool(later) or not record.tags,
        replaced_by=later[0].image_id if later else None,  # records are newest first
        in_use=record.image_id in in_use,
    )


# --- retiring the tag a rebuild replaced ------------------------------------------------------------------


def retire_replaced(engine: ContainerEngine, built: BuiltImage, path_id: str) -> tuple[str, ...]:
    """Untag earlier `envrepro:<digest>` builds of the same snapshot file; return the tags removed.

    Only images whose every tag is such a default tag lose it (a tag the user gave is theirs to remove);
    their layers stay cached, so building the old snapshot again is quick."""
    retired: list[str] = []
    for record in engine.list_images(f"{PATH_LABEL}={path_id}"):
        tags = record.tags
        if record.image_id == built.image_id or not tags or set(tags) & set(built.tags):
            continue
        if all(tag.startswith(DEFAULT_TAG_PREFIX) for tag in tags):
            retired += _untag(engine, tags)
    for tag in retired:
        log.info("untagged %s: replaced by this build of the same snapshot file", tag)
    return tuple(retired)


def _untag(engine: ContainerEngine, tags: Sequence[str]) -> list[str]:
    try:
        for tag in tags:
            engine.delete_image(tag, prune=False)
    except ImageInUseError as exc:
        log.info("kept %s: %s", exc.ref, exc.reason)
        return []
    return list(tags)


# --- clean ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanRequest:
    everything: bool = False  # --all
    older_than: timedelta | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Selected:
    """An image or builder cache `clean` chose; `reason` says why it stays, when it does."""

    kind: Literal["image", "builder", "variant", "files"]
    record: ImageRecord
    digest: str
    reason: str = ""


@dataclass(frozen=True)
class CleanResult:
    removed: tuple[Selected, ...]  # in a dry run: what would be removed
    kept: tuple[Selected, ...]  # selected, but not removed, and why
    dry_run: bool
    containers: tuple[ContainerRecord, ...] = ()  # left behind by killed runs: removed (or would be)


def clean(engine: ContainerEngine, request: CleanRequest, now: float | None = None) -> CleanResult:
    """Remove what `plan_clean` selects (nothing in a dry run); the engine refuses what is in use."""
    now = time.time() if now is None else now
    found = take_inventory(engine, now)
    removals, kept = plan_clean(found, request, now)
    if request.dry_run:
        return CleanResult(tuple(removals), tuple(kept), dry_run=True, containers=found.left_behind)
    for container in found.left_behind:  # first: the images they were created from can go then
        engine.remove_container(container.container_id)
    done: list[Selected] = []
    for removal in removals:
        try:
            _remove(engine, removal.record)
            done.append(removal)
        except ImageInUseError as exc:
            kept.append(replace(removal, reason=exc.reason))
    return CleanResult(tuple(done), tuple(kept), dry_run=False, containers=found.left_behind)


def _remove(engine: ContainerEngine, record: ImageRecord) -> None:
    """Untag every tag but the last, then remove the image and the untagged layers only it used."""
    *others, last = record.tags or (record.image_id,)
    for tag in others:
        engine.delete_image(tag)
    engine.delete_image(last)


def plan_clean(
    inventory: Inventory, request: CleanRequest, now: float
) -> tuple[list[Selected], list[Selected]]:
    """Which images and builder caches to remove, and which selected ones stay (with why). Pure."""
    removals: list[Selected] = []
    kept: list[Selected] = []
    for image in inventory.images:
        if not _old_enough(image.record, request, now) or not (request.everything or image.replaced):
            continue
        why = _why_kept(image, request)
        if why:
            kept.append(Selected("image", image.record, image.digest, why))
        else:
            removals.append(Selected("image", image.record, image.digest))
    removals += _builders_to_remove(inventory, removals, request, now)
    variants, files = _bisect_to_remove(inventory, removals, request, now)
    kept += [chosen for chosen in (*variants, *files) if chosen.reason]
    # variants first: an image a variant is FROM can only go once the variant has gone
    return [*(c for c in variants if not c.reason), *removals, *(c for c in files if not c.reason)], kept


def _bisect_to_remove(
    inventory: Inventory, removals: Sequence[Selected], request: CleanRequest, now: float
) -> tuple[list[Selected], list[Selected]]:
    """Bisect's variants whose image is gone or goes now (every one with --all), and its files images with
    --all or --older-than (without them they stay: they make the next bisect quick). Those a container
    uses come back with a reason."""
    removed_ids = {removal.record.image_id for removal in removals}
    variants: list[Selected] = []
    files: list[Selected] = []
    for image in inventory.bisect:
        if not _old_enough(image.record, request, now):
            continue
        if image.kind == "variant":
            if not (request.everything or image.orphaned or image.variant_of in removed_ids):
                continue
            into = variants
        elif request.everything or request.older_than is not None:
            into = files
        else:
            continue
        into.append(Selected(image.kind, image.record, "", "a container uses it" if image.in_use else ""))
    return variants, files


def _why_kept(image: EnvreproImage, request: CleanRequest) -> str:
    if image.in_use:
        return "a container uses it"
    if image.user_tags and not request.everything:
        return f"tagged {', '.join(image.user_tags)} (use --all, or `docker rmi`)"
    return ""


def _builders_to_remove(
    inventory: Inventory, removals: Sequence[Selected], request: CleanRequest, now: float
) -> list[Selected]:
    removed_ids = {removal.record.image_id for removal in removals}
    removed = {removal.digest for removal in removals}
    remaining = {image.digest for image in inventory.images if image.record.image_id not in removed_ids}
    known = {image.digest for image in inventory.images}
    chosen: list[Selected] = []
    for cache in inventory.builders:
        belongs = cache.digest in removed and (request.everything or cache.digest not in remaining)
        orphan = cache.digest not in known or request.everything
        if not cache.in_use and (belongs or (orphan and _old_enough(cache.record, request, now))):
            chosen.append(Selected("builder", cache.record, cache.digest))
    return chosen


def _old_enough(record: ImageRecord, request: CleanRequest, now: float) -> bool:
    return request.older_than is None or now - record.created >= request.older_than.total_seconds()
