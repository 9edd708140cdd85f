"""What envrepro built on the engine: list it (`envrepro images`), remove what is no longer needed (`envrepro
clean`), and retire the tag that a rebuild of the same snapshot file replaced (`envrepro build`).

Images are found by envrepro's own labels, never by name: every final image carries the snapshot digest,
the snapshot file's name and a hash of its absolute path (`snapshot_path_labels`); the last image of the
builder stage carries `io.envrepro.stage=builder` and the digest (templates/Dockerfile.j2).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

from envrepro.engine_api import ContainerEngine, ImageRecord
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


def take_inventory(engine: ContainerEngine) -> Inventory:
    """Every final image and builder-stage image envrepro's labels mark on this engine."""
    labelled = engine.list_images(DIGEST_LABEL)
    records = _newest_first([record for record in labelled if VARIANT_OF_LABEL not in record.labels])
    in_use = engine.images_used_by_containers()
    images = tuple(_image(record, records, in_use) for record in records)
    builders = tuple(
        BuilderCache(record, record.labels.get(BUILDER_DIGEST_LABEL, ""), record.image_id in in_use)
        for record in _newest_first(engine.list_images(BUILDER_LABEL))
    )
    return Inventory(images, builders)


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

    kind: Literal["image", "builder"]
    record: ImageRecord
    digest: str
    reason: str = ""


@dataclass(frozen=True)
class CleanResult:
    removed: tuple[Selected, ...]  # in a dry run: what would be removed
    kept: tuple[Selected, ...]  # selected, but not removed, and why
    dry_run: bool


def clean(engine: ContainerEngine, request: CleanRequest, now: float | None = None) -> CleanResult:
    """Remove what `plan_clean` selects (nothing in a dry run); the engine refuses what is in use."""
    removals, kept = plan_clean(take_inventory(engine), request, time.time() if now is None else now)
    if request.dry_run:
        return CleanResult(tuple(removals), tuple(kept), dry_run=True)
    done: list[Selected] = []
    for removal in removals:
        try:
            _remove(engine, removal.record)
            done.append(removal)
        except ImageInUseError as exc:
            kept.append(replace(removal, reason=exc.reason))
    return CleanResult(tuple(done), tuple(kept), dry_run=False)


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
    return removals, kept


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


# --- rendering (pure: values in, a table or JSON text out) ----------------------------------------------


def images_table(inventory: Inventory, now: float | None = None) -> Table:
    """`envrepro images`: one row per image, tags one per line, so that it fits 80 columns."""
    now = time.time() if now is None else now
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, header_style="bold")
    for name, justify in (("TAGS", "left"), ("SNAPSHOT", "left"), ("SIZE", "right"), ("CREATED", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    table.add_column("STATUS", overflow="fold")
    for image in inventory.images:
        snapshot = "\n".join(filter(None, (image.digest[:12], image.snapshot_file)))
        table.add_row(
            "\n".join(image.record.tags) or "<none>",
            snapshot,
            human_size(image.record.size_bytes),
            human_age(now - image.record.created),
            "\n".join(_status(image)),
        )
    return table


def _status(image: EnvreproImage) -> list[str]:
    lines = ["replaced" if image.replaced else "current"]
    return [*lines, "in use"] if image.in_use else lines


def builders_summary(inventory: Inventory) -> str:
    total = sum(cache.record.size_bytes for cache in inventory.builders)
    return f"builder-stage cache: {len(inventory.builders)} image(s), {human_size(total)}"


def inventory_json(inventory: Inventory) -> str:
    document = {
        "images": [_image_json(image) for image in inventory.images],
        "builder_cache": [
            {**_record_json(cache.record), "snapshot_digest": cache.digest, "in_use": cache.in_use}
            for cache in inventory.builders
        ],
    }
    return json.dumps(document, indent=2)


def _image_json(image: EnvreproImage) -> dict[str, Any]:
    return {
        **_record_json(image.record),
        "snapshot_digest": image.digest,
        "snapshot_file": image.snapshot_file,
        "snapshot_path_sha256": image.path_id,
        "replaced": image.replaced,
        "replaced_by": image.replaced_by,
        "in_use": image.in_use,
    }


def _record_json(record: ImageRecord) -> dict[str, Any]:
    created = datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    return {
        "id": record.image_id,
        "tags": list(record.tags),
        "size_bytes": record.size_bytes,
        "created": created,
    }


def clean_lines(result: CleanResult) -> list[str]:
    """One line per image removed (or that a dry run would remove) and per image kept, and a total."""
    verb = "would remove" if result.dry_run else "removed"
    lines = [f"{verb} {_describe(removal.kind, removal.record)}" for removal in result.removed]
    lines += [f"kept {_describe('image', kept.record)}: {kept.reason}" for kept in result.kept]
    total = human_size(sum(removal.record.size_bytes for removal in result.removed))
    return [
        *lines,
        f"{verb} {len(result.removed)} image(s), {total} (each size includes layers shared with others)",
    ]


def _describe(kind: str, record: ImageRecord) -> str:
    name = ", ".join(record.tags) if record.tags else _short_id(record.image_id)
    return f"{'builder cache ' if kind == 'builder' else ''}{name} ({human_size(record.size_bytes)})"


def _short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def human_age(seconds: float) -> str:
    for unit, scale in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= scale:
            return f"{int(seconds // scale)}{unit} ago"
    return "just now"
