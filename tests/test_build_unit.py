"""Build orchestration details that need no daemon: pinning the base by digest."""

from __future__ import annotations

from conftest import CASES
from support.fake_engine import FakeEngine

from envrepro import snapshot
from envrepro.build import pin_base_digest
from envrepro.engine import ImageInfo
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
    assert f"FROM {target.base_image}@{DIGEST} AS builder" in dockerfile


def test_a_local_only_base_or_an_unknown_one_stays_a_tag() -> None:
    target = resolve(snapshot.load(SNAPSHOT), target="cpu")
    assert pin_base_digest(target, engine_with(target.base_image, ())) == target
    assert pin_base_digest(target, FakeEngine()) == target
    other = engine_with(target.base_image, (f"someone/else@{DIGEST}",))
    assert pin_base_digest(target, other) == target
