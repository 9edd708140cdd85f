"""Containers a killed run left behind: `envrepro images` says so, `envrepro clean` removes them first.

A run killed with SIGKILL (the OOM killer, a CI job cancelled hard, the machine going down) cannot remove
its container; the stopped container then keeps its volume and makes its image "in use", so `clean`
kept that image for ever and said a container used it. A container that ended moments ago, runs, or was
just created belongs to a live run and is never touched; nor is any container envrepro did not label.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import BASE_IMAGE, RUN_ID
from support.fake_engine import FakeEngine
from test_inventory import DAY, NOW, engine_after_three_reruns, ids

from envrepro import inventory_report
from envrepro.engine import DockerEngine
from envrepro.engine_api import RUN_ID_LABEL, RUN_LABEL, ContainerRecord
from envrepro.inventory import LEFT_BEHIND_S, CleanRequest, clean, left_behind, take_inventory

HOUR = 3600.0


def container(engine: FakeEngine, container_id: str, image_id: str, state: str, *, age_s: float,
              ended_s: float | None = None, labels: dict[str, str] | None = None) -> None:  # fmt: skip
    """A container as the engine lists it: created `age_s` ago, ended `ended_s` ago (exited or dead)."""
    finished = None if ended_s is None else NOW - ended_s
    given = {RUN_LABEL: "parity"} if labels is None else labels
    engine.listed[container_id] = ContainerRecord(container_id, image_id, state, given, NOW - age_s, finished)
    engine.container_images[container_id] = image_id


def test_a_container_a_killed_run_left_is_listed_and_removed_before_the_image_it_held() -> None:
    engine = engine_after_three_reruns()
    container(engine, "c0ffee" * 10, "sha256:mid", "exited", age_s=2 * HOUR, ended_s=2 * HOUR - 30)
    found = take_inventory(engine, NOW)
    assert [c.container_id for c in found.left_behind] == ["c0ffee" * 10]
    assert not next(i for i in found.images if i.record.image_id == "sha256:mid").in_use
    summary = inventory_report.left_behind_summary(found, NOW)
    assert summary == "left behind by killed runs: 1 container(s), oldest 2h ago; `envrepro clean`"
    assert json.loads(inventory_report.inventory_json(found))["left_behind"][0]["state"] == "exited"

    dry = clean(engine, CleanRequest(dry_run=True), now=NOW)
    lines = inventory_report.clean_lines(dry, NOW)
    assert lines[0] == "would remove container c0ffeec0ffee of a killed parity run (exited 1h ago)"
    assert "sha256:mid" in {r.record.image_id for r in dry.removed} and "c0ffee" * 10 in engine.listed
    clean(engine, CleanRequest(), now=NOW)
    assert engine.listed == {} and "sha256:mid" not in ids(engine)


@pytest.mark.parametrize(
    ("state", "age_s", "ended_s"),
    [("exited", HOUR, 60.0), ("dead", HOUR, 60.0), ("running", DAY, None), ("created", 600.0, None),
     ("paused", DAY, None), ("restarting", DAY, None)],
    ids=["exited-a-minute-ago", "dead-a-minute-ago", "running", "created-ten-minutes-ago", "paused",
         "restarting"],
)  # fmt: skip
def test_a_container_of_a_live_run_is_never_touched(state: str, age_s: float, ended_s: float | None) -> None:
    engine = engine_after_three_reruns()
    container(engine, "live", "sha256:mid", state, age_s=age_s, ended_s=ended_s)
    found = take_inventory(engine, NOW)
    assert found.left_behind == () and inventory_report.left_behind_summary(found, NOW) is None
    result = clean(engine, CleanRequest(), now=NOW)
    assert "live" in engine.listed and "sha256:mid" in ids(engine)
    assert ("sha256:mid", "a container uses it") in [(k.record.image_id, k.reason) for k in result.kept]


def test_a_container_envrepro_did_not_label_is_never_touched() -> None:
    engine = engine_after_three_reruns()
    container(engine, "theirs", "sha256:mid", "exited", age_s=DAY, ended_s=DAY, labels={"app": "x"})
    clean(engine, CleanRequest(everything=True), now=NOW)
    assert "theirs" in engine.listed and "sha256:mid" in ids(engine)


def test_one_created_long_ago_and_never_started_was_left_too() -> None:
    engine = FakeEngine()
    container(engine, "never-started", "sha256:x", "created", age_s=2 * HOUR)
    assert [c.container_id for c in take_inventory(engine, NOW).left_behind] == ["never-started"]


class OwnContainers:
    """The real engine, listing only the containers this test session labelled: the engine is shared."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine

    def __getattr__(self, name: str) -> object:
        return getattr(self.engine, name)

    def list_containers(self, label: str) -> list[ContainerRecord]:
        return [c for c in self.engine.list_containers(label) if c.labels.get(RUN_ID_LABEL) == RUN_ID]

    def list_images(self, label: str) -> list[object]:
        return []  # images are not this test's business


@pytest.mark.integration
@pytest.mark.docker
def test_a_real_container_left_stopped_is_found_once_old_enough_and_removed(
    docker_engine: DockerEngine,
) -> None:
    labels = {RUN_LABEL: "parity", RUN_ID_LABEL: RUN_ID}
    left = docker_engine.client.containers.run(BASE_IMAGE, ["true"], labels=labels, detach=True)
    try:
        left.wait()
        own = OwnContainers(docker_engine)
        started = time.time()
        assert left_behind(own, started) == ()  # it ended a moment ago: a live run may be reading it
        (found,) = left_behind(own, started + LEFT_BEHIND_S + 60)  # type: ignore[arg-type]
        assert found.container_id == left.id and found.state == "exited"
        assert found.finished is not None and found.created - 1 <= found.finished <= started + 1
        result = clean(own, CleanRequest(), now=started + LEFT_BEHIND_S + 60)  # type: ignore[arg-type]
        assert [c.container_id for c in result.containers] == [left.id]
        assert left.id not in docker_engine.running_containers(f"{RUN_ID_LABEL}={RUN_ID}")
    finally:
        if left.id in docker_engine.running_containers(f"{RUN_ID_LABEL}={RUN_ID}"):
            left.remove(force=True)
