"""The engine is shared with other runs: what a test session cleans up is only what it made.

tests/support/owned.py gives the session its run id and its own tags; these tests check its teardown on
the real engine with a tiny image, and that a tag another run put on an image is left alone.
"""

from __future__ import annotations

import io
import os
import tarfile
import uuid

import pytest
from conftest import BASE_IMAGE, RUN_ID, OwnImages, own_tag

from envrepro.engine import DockerEngine
from envrepro.engine_api import RUN_ID_LABEL, BuildOptions

# The legacy builder probes the base's children for a cached step, and a child another session deletes
# during that probe failed the build: 'unable to find image "sha256:..."' (a .ci/run with four sessions at
# once). These one-label images are unique anyway: no probe.
UNCACHED = BuildOptions(no_cache=True)


def context(label: str) -> bytes:
    dockerfile = f"FROM {BASE_IMAGE}\nLABEL io.envrepro.test.owned={label}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
    return buffer.getvalue()


def test_every_process_the_tests_start_inherits_the_sessions_own_run_id() -> None:
    assert RUN_ID.startswith("pytest-") and len(RUN_ID) > len("pytest-")
    assert os.environ["ENVREPRO_RUN_ID"] == RUN_ID
    assert own_tag("envrepro-test/x", "cpu") == f"envrepro-test/x:{RUN_ID}-cpu"


@pytest.mark.integration
@pytest.mark.docker
def test_teardown_removes_this_sessions_tags_and_leaves_another_runs_tag_and_image(
    docker_engine: DockerEngine,
) -> None:
    ours, default = own_tag("envrepro-test/owned", "a"), f"envrepro:owned{uuid.uuid4().hex[:8]}"
    theirs = f"envrepro-test/owned:other-run-{uuid.uuid4().hex[:8]}"  # as another session would tag it
    built = docker_engine.build(context(uuid.uuid4().hex), tag=ours, options=UNCACHED)
    try:
        docker_engine.tag_image(ours, default)
        docker_engine.tag_image(ours, theirs)
        own = OwnImages(docker_engine)
        assert own.built(ours) == built.image_id
        own.remove()
        assert docker_engine.inspect_image(built.image_id).tags == (theirs,)
    finally:
        for tag in (ours, default, theirs):
            docker_engine.delete_image(tag)
    assert not docker_engine.image_exists(built.image_id)


@pytest.mark.integration
@pytest.mark.docker
def test_a_cache_tag_keeps_the_newest_build_and_the_one_it_replaced_goes_with_its_own_tags(
    docker_engine: DockerEngine,
) -> None:
    cache = f"envrepro-test/owned-cache:{uuid.uuid4().hex[:8]}"  # a fixed tag in real use; unique here
    first_tag, second_tag = own_tag("envrepro-test/owned", "first"), own_tag("envrepro-test/owned", "second")
    own = OwnImages(docker_engine)
    try:
        first = docker_engine.build(context(uuid.uuid4().hex), tag=first_tag, options=UNCACHED)
        own.built(first_tag)
        own.share_cache(first_tag, cache)
        second = docker_engine.build(context(uuid.uuid4().hex), tag=second_tag, options=UNCACHED)
        own.built(second_tag)
        own.share_cache(second_tag, cache)
        assert docker_engine.image_exists(first.image_id)  # still tagged first_tag: in use
        own.remove()
        assert not docker_engine.image_exists(first.image_id)
        assert docker_engine.inspect_image(second.image_id).tags == (cache,)
    finally:
        for tag in (first_tag, second_tag, cache):
            docker_engine.delete_image(tag)


@pytest.mark.integration
@pytest.mark.docker
def test_listing_own_containers_survives_one_that_is_removed_while_it_is_listed(
    docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI failed once this way: a test polled for parity's container just as parity removed it, and the
    # SDK's containers.list(), which inspects each container it lists, raised NotFound. The interleaving
    # is forced here: the container goes between the list and any inspect of it.
    run_id = f"{RUN_ID}-race-{uuid.uuid4().hex[:8]}"
    created = docker_engine.api.create_container(BASE_IMAGE, command=["true"], labels={RUN_ID_LABEL: run_id})
    container = str(created["Id"])
    inspect = docker_engine.api.inspect_container

    def removed_first(resource_id: object, *args: object, **kwargs: object) -> object:
        docker_engine.remove_container(container)
        return inspect(resource_id, *args, **kwargs)

    monkeypatch.setattr(docker_engine.api, "inspect_container", removed_first)
    try:
        assert docker_engine.running_containers(f"{RUN_ID_LABEL}={run_id}") == [container]
    finally:
        docker_engine.remove_container(container)
    assert docker_engine.running_containers(f"{RUN_ID_LABEL}={run_id}") == []
