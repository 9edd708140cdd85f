"""`envrepro images` and `envrepro clean` shown: the inventory as a table that fits 80 columns, as JSON, and
the lines `clean` prints. Pure: values in, text out (the inventory itself is inventory.py)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from rich.table import Table
from rich.text import Text

from envrepro.engine_api import RUN_ID_LABEL, RUN_LABEL, ContainerRecord, ImageRecord
from envrepro.grammar import one_line
from envrepro.inventory import BisectImage, CleanResult, EnvreproImage, Inventory


def images_table(inventory: Inventory, now: float | None = None) -> Table:
    """`envrepro images`: one row per image, tags one per line, so that it fits 80 columns."""
    now = time.time() if now is None else now
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, header_style="bold")
    for name, justify in (("TAGS", "left"), ("SNAPSHOT", "left"), ("SIZE", "right"), ("CREATED", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    table.add_column("STATUS", overflow="fold")
    for image in inventory.images:
        # Labels are anyone's to set (`docker build --label`): shown escaped (no terminal controls) and as
        # plain text, never as rich markup (`[/]` in a label made the table raise).
        snapshot = "\n".join(one_line(v) for v in (image.digest[:12], image.snapshot_file or "") if v)
        cells = (
            "\n".join(image.record.tags) or "<none>",
            snapshot,
            human_size(image.record.size_bytes),
            human_age(now - image.record.created),
            "\n".join(_status(image)),
        )
        table.add_row(*(Text(cell) for cell in cells))
    return table


def _status(image: EnvreproImage) -> list[str]:
    lines = ["replaced" if image.replaced else "current"]
    return [*lines, "in use"] if image.in_use else lines


def builders_summary(inventory: Inventory) -> str:
    total = sum(cache.record.size_bytes for cache in inventory.builders)
    return f"builder-stage cache: {len(inventory.builders)} image(s), {human_size(total)}"


def bisect_summary(inventory: Inventory) -> str:
    """What `envrepro bisect` left: the variants kept with --keep and its files images (its cache)."""
    variants = [image for image in inventory.bisect if image.kind == "variant"]
    files = [image for image in inventory.bisect if image.kind == "files"]
    total = human_size(sum(image.record.size_bytes for image in inventory.bisect))
    return f"bisect: {len(variants)} variant(s) kept, {len(files)} files image(s) (its cache), {total}"


def inventory_json(inventory: Inventory) -> str:
    document = {
        "images": [_image_json(image) for image in inventory.images],
        "builder_cache": [
            {**_record_json(cache.record), "snapshot_digest": cache.digest, "in_use": cache.in_use}
            for cache in inventory.builders
        ],
        "bisect": [_bisect_json(image) for image in inventory.bisect],
        "left_behind": [_container_json(container) for container in inventory.left_behind],
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


def _bisect_json(image: BisectImage) -> dict[str, Any]:
    return {
        **_record_json(image.record),
        "kind": image.kind,
        "variant_of": image.variant_of,
        "orphaned": image.orphaned,
        "in_use": image.in_use,
    }


def _container_json(container: ContainerRecord) -> dict[str, Any]:
    return {
        "id": container.container_id,
        "image_id": container.image_id,
        "run": container.labels.get(RUN_LABEL, ""),
        "run_id": container.labels.get(RUN_ID_LABEL),
        "state": container.state,
        "created": _iso(container.created),
        "finished": None if container.finished is None else _iso(container.finished),
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _record_json(record: ImageRecord) -> dict[str, Any]:
    created = _iso(record.created)
    return {
        "id": record.image_id,
        "tags": list(record.tags),
        "size_bytes": record.size_bytes,
        "created": created,
    }


def left_behind_summary(inventory: Inventory, now: float | None = None) -> str | None:
    """A line when runs left stopped containers (and their volumes) behind; None when they left none."""
    if not inventory.left_behind:
        return None
    now = time.time() if now is None else now
    oldest = human_age(now - inventory.left_behind[0].created)
    count = len(inventory.left_behind)
    return f"left behind by killed runs: {count} container(s), oldest {oldest}; `envrepro clean`"


def _container_line(verb: str, container: ContainerRecord, now: float) -> str:
    run = one_line(container.labels.get(RUN_LABEL, "")[:40])
    ended = human_age(now - (container.finished or container.created))
    short = container.container_id[:12]
    return f"{verb} container {short} of a killed {run} run ({container.state} {ended})"


def clean_lines(result: CleanResult, now: float | None = None) -> list[str]:
    """One line per container a killed run left and per image removed (or that a dry run would remove),
    one per image kept, and a total."""
    now = time.time() if now is None else now
    verb = "would remove" if result.dry_run else "removed"
    lines = [_container_line(verb, container, now) for container in result.containers]
    lines += [f"{verb} {_describe(removal.kind, removal.record)}" for removal in result.removed]
    lines += [f"kept {_describe(kept.kind, kept.record)}: {kept.reason}" for kept in result.kept]
    total = human_size(sum(removal.record.size_bytes for removal in result.removed))
    return [
        *lines,
        f"{verb} {len(result.removed)} image(s), {total} (each size includes layers shared with others)",
    ]


_KIND_PREFIX = {
    "image": "",
    "builder": "builder cache ",
    "variant": "bisect variant ",
    "files": "bisect files ",
}


def _describe(kind: str, record: ImageRecord) -> str:
    name = ", ".join(record.tags) if record.tags else _short_id(record.image_id)
    return f"{_KIND_PREFIX[kind]}{name} ({human_size(record.size_bytes)})"


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
