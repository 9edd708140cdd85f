"""`envrepro images`, `envrepro clean` and the rebuild that retires the tag it replaced, on the fake engine.

Images are set up the way the real engine lists them: final images carry the labels `envrepro build` gives
them (rendered from the real template where the test is about the template), builder-stage images carry
`io.envrepro.stage=builder`, and anything else on the engine is someone else's.
"""

from __future__ import annotations

import io
import json
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import CASES, RUN_ID
from rich.console import Console
from support.fake_engine import FakeEngine

from envrepro import inventory, inventory_report, snapshot
from envrepro.engine_api import RUN_ID_LABEL, ContainerRecord, ImageInfo
from envrepro.errors import DurationError
from envrepro.inventory import (
    BUILDER_DIGEST_LABEL,
    DIGEST_LABEL,
    FILE_LABEL,
    PATH_LABEL,
    VARIANT_FILES_LABEL,
    VARIANT_OF_LABEL,
    CleanRequest,
    clean,
    parse_duration,
    retire_replaced,
    snapshot_path_labels,
    take_inventory,
    with_snapshot_path,
)
from envrepro.render import render
from envrepro.resolve import resolve
from envrepro.target import BuiltImage, Lock

NOW = 1_000_000_000.0
DAY = 86400.0
PATH_A = "sha256:" + "a" * 64
PATH_B = "sha256:" + "b" * 64


def final(engine: FakeEngine, image_id: str, tags: tuple[str, ...], *, digest: str, path: str | None,
          age_days: float, size: int = 1_800_000_000) -> None:  # fmt: skip
    labels = {DIGEST_LABEL: digest, FILE_LABEL: "envrepro.lock.json"} | ({PATH_LABEL: path} if path else {})
    info = ImageInfo(image_id, size, tags, labels, ())
    for ref in tags or (image_id,):
        engine.images[ref] = info
    engine.created_at[image_id] = NOW - age_days * DAY


def builder(engine: FakeEngine, image_id: str, *, digest: str, age_days: float) -> None:
    labels = {"io.envrepro.stage": "builder", BUILDER_DIGEST_LABEL: digest}
    engine.images[image_id] = ImageInfo(image_id, 1_500_000_000, (), labels, ())
    engine.created_at[image_id] = NOW - age_days * DAY


def engine_after_three_reruns() -> FakeEngine:
    """Project A rebuilt three times (the oldest already untagged), project B once, and foreign images."""
    engine = FakeEngine()
    final(engine, "sha256:old", (), digest="d1" * 32, path=PATH_A, age_days=20)
    final(engine, "sha256:mid", ("envrepro:d2d2d2d2d2d2",), digest="d2" * 32, path=PATH_A, age_days=10)
    final(engine, "sha256:new", ("envrepro-example/tiny-model:latest", "envrepro:d3d3d3d3d3d3"),
          digest="d3" * 32, path=PATH_A, age_days=1)  # fmt: skip
    final(engine, "sha256:other", ("envrepro:e1e1e1e1e1e1",), digest="e1" * 32, path=PATH_B, age_days=30)
    for digest, age_days in (("d1", 20), ("d2", 10), ("d3", 1), ("e1", 30)):  # built with its final image
        builder(engine, f"sha256:builder-{digest}", digest=digest * 32, age_days=age_days)
    builder(engine, "sha256:builder-gone", digest="f" * 64, age_days=40)  # its final image was removed
    engine.images["python:3.11"] = ImageInfo("sha256:python", 1, ("python:3.11",), {}, ())
    engine.images["someone/app:1"] = ImageInfo("sha256:app", 1, ("someone/app:1",), {"x": "y"}, ())
    return engine


def ids(engine: FakeEngine) -> set[str]:
    return {info.image_id for info in engine.images.values()}


# --- durations --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1d", 86400)]
)
def test_durations_are_a_whole_number_and_a_unit(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "7", "d", "0d", "1.5d", "-1h", "7 d", " 7d", "7D", "7days", "1y", "9999999w"]
)
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_clean_with_a_bad_duration_is_one_clear_error_with_exit_2(cli) -> None:
    result = cli("clean", "--older-than", "1.5d")
    assert result.exit_code == 2
    assert result.error_lines == ["error: '1.5d' is not a duration"], result.stderr
    assert "30m, 12h, 7d or 2w" in result.stderr and "Traceback" not in result.stderr


def test_images_without_an_engine_is_one_clear_error_with_exit_2(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    for command in (["images"], ["clean", "--dry-run"]):
        result = cli(*command)
        assert result.exit_code == 2 and len(result.error_lines) == 1, result.stderr
        assert result.error_lines[0].startswith("error: no Docker engine reachable")


# --- the labels a build records ---------------------------------------------------------------------------


def test_the_snapshot_path_is_recorded_as_a_hash_and_a_file_name_never_as_the_host_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "alice-secret-project").mkdir()
    snap = tmp_path / "alice-secret-project" / "envrepro.lock.json"
    labels = dict(snapshot_path_labels(snap))
    assert labels[FILE_LABEL] == "envrepro.lock.json"
    assert labels[PATH_LABEL].startswith("sha256:") and len(labels[PATH_LABEL]) == 71
    assert not any("alice" in value or str(tmp_path) in value for value in labels.values())
    monkeypatch.chdir(tmp_path / "alice-secret-project")
    assert snapshot_path_labels(Path("envrepro.lock.json")) == tuple(labels.items())  # relative = absolute
    assert dict(snapshot_path_labels(tmp_path / "other.json"))[PATH_LABEL] != labels[PATH_LABEL]


def rendered_dockerfile(snap: Path) -> str:
    target = with_snapshot_path(
        resolve(snapshot.load(CASES / "tf221-cpu-snapshot" / "envrepro.lock.json")), snap
    )
    return dict(render(target, Lock(text="", requirements=())).files)["Dockerfile"].decode()


def test_the_builder_stage_is_labelled_last_and_the_final_stage_does_not_inherit_it(tmp_path: Path) -> None:
    text = rendered_dockerfile(tmp_path / "envrepro.lock.json")
    builder_stage, final_stage = text.split("\nFROM --platform=linux/amd64 python:3.11.7-slim-bookworm\n")
    instructions = [line for line in builder_stage.splitlines() if line[:1].isupper()]
    assert (
        instructions[-1] == 'LABEL io.envrepro.stage="builder" \\'
    )  # after the venv: its layer stays cached
    assert "io.envrepro.builder.snapshot.digest=" in builder_stage
    assert "io.envrepro.stage" not in final_stage and "io.envrepro.builder" not in final_stage
    assert 'io.envrepro.snapshot.file="envrepro.lock.json"' in final_stage
    assert str(tmp_path) not in text


# --- envrepro images --------------------------------------------------------------------------------------


def test_images_lists_what_envrepro_built_and_which_builds_a_newer_one_replaced() -> None:
    found = take_inventory(engine_after_three_reruns())
    by_id = {image.record.image_id: image for image in found.images}
    assert list(by_id) == ["sha256:new", "sha256:mid", "sha256:old", "sha256:other"]  # newest first
    assert not by_id["sha256:new"].replaced
    assert by_id["sha256:mid"].replaced and by_id["sha256:mid"].replaced_by == "sha256:new"
    assert by_id["sha256:old"].replaced and by_id["sha256:old"].record.tags == ()
    assert not by_id["sha256:other"].replaced  # another snapshot file: not a replacement, however old
    assert {cache.digest[:2] for cache in found.builders} == {"d1", "d2", "d3", "e1", "ff"}


def test_a_bisect_variant_kept_with_keep_neither_replaces_the_build_nor_is_cleaned_as_one() -> None:
    """A variant is FROM the build, so it inherits the build's snapshot labels; it was listed as a newer
    build of the same snapshot file, which made the build itself "replaced" and `clean` remove it."""
    engine = engine_after_three_reruns()
    final(engine, "sha256:variant", ("envrepro-variant:abc",), digest="d3" * 32, path=PATH_A, age_days=0.01)
    engine.images["envrepro-variant:abc"].labels[VARIANT_OF_LABEL] = "sha256:new"

    found = take_inventory(engine)
    by_id = {image.record.image_id: image for image in found.images}
    assert "sha256:variant" not in by_id
    assert not by_id["sha256:new"].replaced
    would = clean(engine, CleanRequest(dry_run=True), now=NOW).removed
    assert {"sha256:new", "sha256:variant"}.isdisjoint(removal.record.image_id for removal in would)


def test_images_table_fits_80_columns_without_cutting_a_tag_or_a_digest() -> None:
    console = Console(width=80, record=True, file=io.StringIO())
    found = take_inventory(engine_after_three_reruns())
    console.print(inventory_report.images_table(found, NOW))
    text = console.export_text()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    for word in ("envrepro-example/tiny-model:latest", "envrepro:d3d3d3d3d3d3", "d1d1d1d1d1d1", "<none>",
                 "replaced", "current", "1.8 GB", "2w ago", "envrepro.lock.json"):  # fmt: skip
        assert word in text


def test_images_json_has_one_object_per_image_and_per_builder_cache() -> None:
    document = json.loads(inventory_report.inventory_json(take_inventory(engine_after_three_reruns())))
    assert document["images"][0]["id"] == "sha256:new"
    mid = document["images"][1]
    assert (
        mid["replaced"] is True
        and mid["replaced_by"] == "sha256:new"
        and mid["tags"] == ["envrepro:d2d2d2d2d2d2"]
    )
    assert mid["snapshot_path_sha256"] == PATH_A and mid["created"].endswith("Z")
    assert len(document["builder_cache"]) == 5


# --- envrepro clean ---------------------------------------------------------------------------------------


def test_clean_removes_replaced_images_and_their_builder_cache_and_nothing_else() -> None:
    engine = engine_after_three_reruns()
    result = clean(engine, CleanRequest(), now=NOW)
    removed = {removal.record.image_id for removal in result.removed}
    assert removed == {
        "sha256:old",
        "sha256:mid",
        "sha256:builder-d1",
        "sha256:builder-d2",
        "sha256:builder-gone",
    }
    assert ids(engine) == {"sha256:new", "sha256:other", "sha256:builder-d3", "sha256:builder-e1",
                           "sha256:python", "sha256:app"}  # fmt: skip
    assert "envrepro-example/tiny-model:latest" in engine.images


def test_a_dry_run_lists_the_same_and_removes_nothing() -> None:
    engine = engine_after_three_reruns()
    before = dict(engine.images)
    dry = clean(engine, CleanRequest(dry_run=True), now=NOW)
    assert engine.images == before
    real = clean(engine, CleanRequest(), now=NOW)
    assert [r.record.image_id for r in dry.removed] == [r.record.image_id for r in real.removed]
    assert inventory_report.clean_lines(dry)[0].startswith("would remove ")


def test_clean_all_removes_every_envrepro_image_and_cache_but_never_a_foreign_one() -> None:
    engine = engine_after_three_reruns()
    clean(engine, CleanRequest(everything=True), now=NOW)
    assert ids(engine) == {"sha256:python", "sha256:app"}


def test_older_than_keeps_what_is_newer() -> None:
    engine = engine_after_three_reruns()
    result = clean(engine, CleanRequest(everything=True, older_than=timedelta(days=15)), now=NOW)
    removed = {r.record.image_id for r in result.removed}
    assert removed == {"sha256:old", "sha256:other", "sha256:builder-d1", "sha256:builder-e1",
                       "sha256:builder-gone"}  # fmt: skip
    assert {"sha256:new", "sha256:mid"} <= ids(engine)


def test_older_than_without_all_removes_only_replaced_images_that_old() -> None:
    engine = engine_after_three_reruns()
    result = clean(engine, CleanRequest(older_than=timedelta(days=15)), now=NOW)
    assert {r.record.image_id for r in result.removed} == {
        "sha256:old",
        "sha256:builder-d1",
        "sha256:builder-gone",
    }


def test_an_image_a_container_uses_is_kept_and_said_why() -> None:
    engine = engine_after_three_reruns()
    engine.container_images["stopped-one"] = "sha256:mid"
    result = clean(engine, CleanRequest(), now=NOW)
    assert "sha256:mid" in ids(engine) and "sha256:builder-d2" in ids(engine)
    assert [(k.record.image_id, k.reason) for k in result.kept] == [("sha256:mid", "a container uses it")]
    assert any(line.startswith("kept envrepro:d2d2d2d2d2d2") for line in inventory_report.clean_lines(result))


def test_a_replaced_image_with_a_tag_the_user_gave_is_kept_unless_all() -> None:
    engine = engine_after_three_reruns()
    engine.tag_image("envrepro:d2d2d2d2d2d2", "team/model:v1")
    result = clean(engine, CleanRequest(), now=NOW)
    assert "team/model:v1" in engine.images and "sha256:old" not in ids(engine)
    assert "team/model:v1" in result.kept[0].reason
    clean(engine, CleanRequest(everything=True), now=NOW)
    assert "team/model:v1" not in engine.images


# --- what bisect leaves: variants kept with --keep, files images, a builder stage FROM a build -----------


def derived(engine: FakeEngine, image_id: str, tag: str, of: str, labels: dict[str, str], age_days: float,
            size: int = 2_900_000_000) -> None:  # fmt: skip
    """An image FROM the envrepro image `of`: it inherits that image's labels, as the engine gives them."""
    parent = next(info for info in engine.images.values() if info.image_id == of)
    engine.images[tag] = ImageInfo(image_id, size, (tag,), {**parent.labels, **labels}, ())
    engine.created_at[image_id] = NOW - age_days * DAY


def files_image(engine: FakeEngine, image_id: str, tag: str, age_days: float) -> None:
    """A files image (FROM scratch): its own label only."""
    engine.images[tag] = ImageInfo(image_id, 1_100_000_000, (tag,), {VARIANT_FILES_LABEL: tag}, ())
    engine.created_at[image_id] = NOW - age_days * DAY


def engine_after_bisects() -> FakeEngine:
    """Three reruns, then bisect of the current and of the replaced build, both with --keep, and one variant
    whose image was removed since; two files images, one of them a month old."""
    engine = engine_after_three_reruns()
    for image_id, of in (("sha256:v-new", "sha256:new"), ("sha256:v-mid", "sha256:mid")):
        labels = {VARIANT_OF_LABEL: of, VARIANT_FILES_LABEL: "envrepro-variant-files:f1"}
        derived(engine, image_id, f"envrepro-variant:{image_id[-3:]}", of, labels, age_days=0.5)
    derived(engine, "sha256:v-gone", "envrepro-variant:gone", "sha256:other",
            {VARIANT_OF_LABEL: "sha256:removed-since"}, age_days=3)  # fmt: skip
    files_image(engine, "sha256:f1", "envrepro-variant-files:f1", age_days=0.5)
    files_image(engine, "sha256:f2", "envrepro-variant-files:f2", age_days=30)
    return engine


def test_images_lists_what_bisect_left_apart_from_the_builds() -> None:
    found = take_inventory(engine_after_bisects())
    assert [image.record.image_id for image in found.images] == [
        "sha256:new", "sha256:mid", "sha256:old", "sha256:other"]  # fmt: skip
    assert not any(image.replaced_by for image in found.images if image.record.image_id == "sha256:new")
    by_id = {image.record.image_id: image for image in found.bisect}
    assert set(by_id) == {"sha256:v-new", "sha256:v-mid", "sha256:v-gone", "sha256:f1", "sha256:f2"}
    assert by_id["sha256:v-new"].kind == "variant" and by_id["sha256:v-new"].variant_of == "sha256:new"
    assert by_id["sha256:v-gone"].orphaned and not by_id["sha256:v-new"].orphaned
    assert by_id["sha256:f1"].kind == "files" and by_id["sha256:f1"].variant_of is None
    summary = inventory_report.bisect_summary(found)
    assert summary == "bisect: 3 variant(s) kept, 2 files image(s) (its cache), 10.9 GB"
    document = json.loads(inventory_report.inventory_json(found))
    assert {entry["id"]: entry["kind"] for entry in document["bisect"]}["sha256:f2"] == "files"


def test_a_builder_stage_from_a_build_left_behind_does_not_make_the_build_replaced() -> None:
    """A files image's builder stage is FROM the build, so it has the build's snapshot labels and is newer:
    left behind (bisect stopped between the build and its removal), it was listed as the newer build of
    that snapshot file, and `clean` removed the build it came from."""
    engine = engine_after_three_reruns()
    derived(engine, "sha256:stage", "sha256:stage", "sha256:other",
            {"io.envrepro.stage": "builder", "io.envrepro.variant.builder": "envrepro-variant-files:f1"},
            age_days=0.1)  # fmt: skip
    found = take_inventory(engine)
    assert "sha256:stage" not in {image.record.image_id for image in found.images}
    assert not next(image for image in found.images if image.record.image_id == "sha256:other").replaced
    removed = {r.record.image_id for r in clean(engine, CleanRequest(), now=NOW).removed}
    assert "sha256:other" not in removed
    assert "sha256:stage" in removed  # an orphaned builder cache, as before


def test_clean_removes_the_variants_of_images_that_go_and_keeps_bisects_files_cache() -> None:
    engine = engine_after_bisects()
    result = clean(engine, CleanRequest(), now=NOW)
    removed = [r.record.image_id for r in result.removed]
    assert {"sha256:v-mid", "sha256:v-gone"} <= set(removed)  # FROM a replaced build; FROM one gone
    assert removed.index("sha256:v-mid") < removed.index("sha256:mid")  # a variant goes before its image
    assert {"sha256:v-new", "sha256:f1", "sha256:f2", "sha256:new"} <= ids(engine)
    lines = inventory_report.clean_lines(result)
    assert "removed bisect variant envrepro-variant:mid (2.9 GB)" in lines


def test_a_variant_of_an_image_envrepro_did_not_build_is_not_orphaned_while_that_image_is_there() -> None:
    """bisect takes any image (--image): the variant's source need not carry envrepro's labels."""
    engine = engine_after_bisects()
    engine.images["team/app:1"] = ImageInfo("sha256:app1", 1, ("team/app:1",), {}, ())
    derived(engine, "sha256:v-app", "envrepro-variant:app", "sha256:new",
            {VARIANT_OF_LABEL: "sha256:app1"}, age_days=1)  # fmt: skip
    variant = next(b for b in take_inventory(engine).bisect if b.record.image_id == "sha256:v-app")
    assert not variant.orphaned
    clean(engine, CleanRequest(), now=NOW)
    assert "sha256:v-app" in ids(engine)
    del engine.images["team/app:1"]
    clean(engine, CleanRequest(), now=NOW)
    assert "sha256:v-app" not in ids(engine)


def test_clean_all_removes_what_bisect_left_too() -> None:
    engine = engine_after_bisects()
    clean(engine, CleanRequest(everything=True), now=NOW)
    assert ids(engine) == {"sha256:python", "sha256:app"}


def test_older_than_removes_bisects_files_images_that_old() -> None:
    engine = engine_after_bisects()
    result = clean(engine, CleanRequest(older_than=timedelta(days=7)), now=NOW)
    removed = {r.record.image_id for r in result.removed}
    assert "sha256:f2" in removed and "sha256:f1" not in removed
    assert "removed bisect files envrepro-variant-files:f2 (1.1 GB)" in inventory_report.clean_lines(result)


def test_a_variant_a_container_uses_is_kept_and_said_why() -> None:
    engine = engine_after_bisects()
    engine.container_images["debugging"] = "sha256:v-gone"
    result = clean(engine, CleanRequest(), now=NOW)
    assert "sha256:v-gone" in ids(engine)
    assert ("sha256:v-gone", "a container uses it") in [(k.record.image_id, k.reason) for k in result.kept]
    lines = inventory_report.clean_lines(result)
    assert any(line.startswith("kept bisect variant envrepro-variant:gone") for line in lines)


# --- a rebuild of the same snapshot file leaves one tag ---------------------------------------------------


def fake_build(engine: FakeEngine, snap_file: Path, variant_env: str) -> BuiltImage:
    """A build as `envrepro build` renders it: the real template, the snapshot's labels, its default tag."""
    raw = json.loads((CASES / "tf221-cpu-snapshot" / "envrepro.lock.json").read_text())
    raw["environment"]["env"]["PYTHONHASHSEED"] = variant_env  # a retrained model: another digest
    snap_file.write_text(json.dumps(raw), encoding="utf-8")
    snap = snapshot.load(snap_file)
    target = with_snapshot_path(resolve(snap), snap_file)
    dockerfile = dict(render(target, Lock(text="", requirements=())).files)["Dockerfile"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
    return engine.build(buffer.getvalue(), tag=f"envrepro:{snap.digest()[:12]}")


def test_a_rebuild_of_the_same_snapshot_file_untags_the_build_it_replaced(tmp_path: Path) -> None:
    engine = FakeEngine()
    snap_file = tmp_path / "envrepro.lock.json"
    first = fake_build(engine, snap_file, "1")
    elsewhere = fake_build(engine, tmp_path / "other.json", "3")  # another snapshot file
    second = fake_build(engine, snap_file, "2")
    path_id = dict(snapshot_path_labels(snap_file))[PATH_LABEL]
    assert retire_replaced(engine, second, path_id) == first.tags
    tags = {tag for tag in engine.images if tag.startswith("envrepro:")}
    assert tags == {second.tags[0], elsewhere.tags[0]}
    assert first.image_id in engine.images  # untagged, its layers still cached
    assert retire_replaced(engine, second, path_id) == ()  # a third build replaces nothing more


def test_a_replaced_build_that_carries_a_tag_the_user_gave_keeps_its_tags(tmp_path: Path) -> None:
    engine = FakeEngine()
    snap_file = tmp_path / "envrepro.lock.json"
    first = fake_build(engine, snap_file, "1")
    engine.tag_image(first.tags[0], "team/model:v1")
    second = fake_build(engine, snap_file, "2")
    assert retire_replaced(engine, second, dict(snapshot_path_labels(snap_file))[PATH_LABEL]) == ()
    assert first.tags[0] in engine.images and "team/model:v1" in engine.images


# --- the real engine ------------------------------------------------------------------------------------


class OwnImages:
    """The real engine, listing only the images of these snapshot digests: the engine is shared, and a test
    removes only what it built. Everything else (removal, containers, tags) is the real engine's."""

    def __init__(self, engine: object, digests: set[str]) -> None:
        self.engine = engine
        self.digests = digests

    def __getattr__(self, name: str) -> object:
        return getattr(self.engine, name)

    def list_images(self, label: str) -> list[object]:
        records = self.engine.list_images(label)  # type: ignore[attr-defined]
        mine = lambda r: {r.labels.get(DIGEST_LABEL), r.labels.get(BUILDER_DIGEST_LABEL)} & self.digests  # noqa: E731
        return [record for record in records if mine(record)]

    def list_containers(self, label: str) -> list[ContainerRecord]:
        """Only this session's: `clean` removes the containers killed runs left, and those of another run
        are not ours to remove (the first version of this test removed one)."""
        found: list[ContainerRecord] = self.engine.list_containers(label)  # type: ignore[attr-defined]
        return [c for c in found if c.labels.get(RUN_ID_LABEL) == RUN_ID]


@pytest.mark.integration
@pytest.mark.docker
def test_rebuilding_a_changed_snapshot_file_leaves_one_envrepro_tag_and_clean_removes_the_rest(
    docker_engine, plain_python: Path, planted_cert: Path, tmp_path: Path
) -> None:
    from conftest import RUN_ID, _run_cli, build_args, own_tag

    snap, out, user_tag = tmp_path / "envrepro.lock.json", tmp_path / "build", own_tag("envrepro-test/rerun")
    assert _run_cli(["snapshot", "--python", str(plain_python), "-o", str(snap)]).exit_code == 0
    # Other runs on this engine snapshot the same environment: a hash seed of this session's own makes the
    # snapshot digests, and so the images and builder stages this test lists and cleans, its own.
    seed = int(RUN_ID.rpartition("-")[2], 16) % 4_000_000_000
    raw = json.loads(snap.read_text(encoding="utf-8"))
    raw["environment"]["env"]["PYTHONHASHSEED"] = str(seed)
    snap.write_text(json.dumps(raw), encoding="utf-8")
    first = snapshot.load(snap).digest()
    own = OwnImages(docker_engine, {first})
    try:
        built = _run_cli(build_args(snap, out, planted_cert, "--tag", user_tag))
        assert built.exit_code == 0, built.stderr
        raw = json.loads(snap.read_text(encoding="utf-8"))
        raw["environment"]["env"]["PYTHONHASHSEED"] = str(seed + 1)  # retrained: same file, new digest
        snap.write_text(json.dumps(raw), encoding="utf-8")
        second = snapshot.load(snap).digest()
        own.digests.add(second)
        rebuilt = _run_cli(build_args(snap, out, planted_cert, "--tag", user_tag))
        assert rebuilt.exit_code == 0, rebuilt.stderr
        found = take_inventory(own)  # type: ignore[arg-type]
        tags = {tag for image in found.images for tag in image.record.tags}
        assert tags == {f"envrepro:{second[:12]}", user_tag}  # one envrepro tag, not one more per rerun
        old = [image for image in found.images if image.digest == first]
        assert old and all(image.replaced and not image.record.tags for image in old)  # layers still cached
        assert {cache.digest for cache in found.builders} == {first, second}  # the builder stage is labelled
        listed = _run_cli(["images", "--format", "json"])  # the CLI only reads: safe on a shared engine
        document = json.loads(listed.stdout)
        assert {first, second} <= {image["snapshot_digest"] for image in document["images"]}
        table = _run_cli(["images"])
        assert f"envrepro:{second[:12]}" in table.stdout and max(map(len, table.stdout.splitlines())) <= 80
        would = _run_cli(["clean", "--dry-run"])
        assert would.exit_code == 0 and "would remove" in would.stdout, would.stderr
        dry = clean(own, CleanRequest(dry_run=True))  # type: ignore[arg-type]
        assert {removal.digest for removal in dry.removed} == {first}
        assert take_inventory(own) == found  # type: ignore[arg-type]
        clean(own, CleanRequest())  # type: ignore[arg-type]
        after = take_inventory(own)  # type: ignore[arg-type]
        assert {image.digest for image in after.images} == {second}
        assert {cache.digest for cache in after.builders} == {second}
        stopped = docker_engine.client.containers.create(user_tag, ["true"])  # a stopped container uses it
        try:
            kept = clean(own, CleanRequest(everything=True))  # type: ignore[arg-type]
            assert [k.reason for k in kept.kept] == ["a container uses it"]
            assert docker_engine.image_exists(user_tag)
        finally:
            stopped.remove(force=True)
    finally:
        clean(own, CleanRequest(everything=True))  # type: ignore[arg-type]
    assert take_inventory(own) == inventory.Inventory((), ())  # type: ignore[arg-type]
