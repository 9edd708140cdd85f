"""Build orchestration details that need no daemon: pinning the base by digest, checking --tag first."""

from __future__ import annotations

import pytest
from conftest import CASES
from support.fake_engine import FakeEngine

from envrepro import snapshot
from envrepro.build import pin_base_digest
from envrepro.engine_api import ImageInfo
from envrepro.imageref import check_tag_reference
from envrepro.render import render
from envrepro.resolve import resolve
from envrepro.target import Lock

SNAPSHOT = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
DIGEST = "sha256:" + "ab" * 32


def engine_with(ref: str, digests: tuple[str, ...]) -> FakeEngine:
    return FakeEngine(images={ref: ImageInfo("sha256:1", 1, (ref,), {}, (), repo_digests=digests)})


def test_a_base_the_engine_pulled_from_a_registry_is_pinned_by_digest() -> None:
    target = resolve(snapshot.load(SNAPSHOT), target="cpu")
    pinned = pin_base_digest(target, engine_with(target.base_image, (f"python@{DIGEST}",)))
    assert pinned.base_image == f"{target.base_image}@{DIGEST}"
    assert ("org.opencontainers.image.base.digest", DIGEST) in pinned.labels
    dockerfile = dict(render(pinned, Lock(text="", requirements=())).files)["Dockerfile"].decode()
    assert f"FROM --platform=linux/amd64 {target.base_image}@{DIGEST} AS builder" in dockerfile


def test_a_local_only_base_or_an_unknown_one_stays_a_tag() -> None:
    target = resolve(snapshot.load(SNAPSHOT), target="cpu")
    assert pin_base_digest(target, engine_with(target.base_image, ())) == target
    assert pin_base_digest(target, FakeEngine()) == target
    other = engine_with(target.base_image, (f"someone/else@{DIGEST}",))
    assert pin_base_digest(target, other) == target


@pytest.mark.parametrize(
    ("tag", "rule"),
    [
        ("Team/Model:1", "the repository name must be lowercase"),
        ("team/model:v1!", "the tag is 1-128 letters, digits"),
        ("team/model:" + "x" * 129, "the tag is 1-128 letters, digits"),
        ("team/model@sha256:" + "a" * 64, "a tag names NAME:TAG, not a digest"),
        ("team//model", "the name is path components"),
        ("a" * 256, "the name is longer than 255 characters"),
    ],
)
def test_an_invalid_tag_is_exit_2_before_any_work(cli, tmp_path, tag, rule) -> None:
    out = tmp_path / "build"
    result = cli("build", "--snapshot", str(SNAPSHOT), "--render-only", "--out", str(out), "--tag", tag)
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert result.error_lines[0].startswith(f"error: --tag {tag!r} is not a valid image reference: {rule}")
    assert not out.exists()  # nothing locked, rendered or written


@pytest.mark.parametrize(
    "tag",
    [
        "model",
        "team/model:1.0",
        "localhost:5000/team/model:latest",
        "ghcr.io/acme/fraud-model-env:v2_rc-1",
        "Registry.Example.com/a__b/c-d:X",
        "a.b_c--d/e",
    ],
)
def test_valid_tags_pass_as_given(tag: str) -> None:
    assert check_tag_reference(tag) == tag
