"""The engine interface without a daemon: build-stream folding, build failures, the fake engine."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CASES, CliResult
from support.fake_engine import ContainerFs, FakeEngine

from envrepro.engine import DockerEngine
from envrepro.engine_api import BuildEvent, BuildOptions, BuildStream, ContainerSpec, RunResult
from envrepro.errors import BuildFailedError, EngineError, EngineUnavailableError


def messages(*lines: str) -> list[dict[str, str]]:
    return [{"stream": line + "\n"} for line in lines]


def test_build_stream_emits_one_event_per_step_and_marks_cache_hits() -> None:
    events: list[BuildEvent] = []
    stream = BuildStream(events.append)
    for message in messages(
        "Step 1/3 : FROM base",
        " ---> 1234",
        "Step 2/3 : COPY pip/ /tmp/envrepro-pip/",
        " ---> Using cache",
        "Step 3/3 : RUN pip install",
        " ---> Running in abc",
        "Successfully built 0123456789ab",
    ):
        stream.feed(message)
    assert [(e.step, e.total, e.cached) for e in events] == [
        (1, 3, False),
        (2, 3, False),
        (2, 3, True),
        (3, 3, False),
    ]
    assert stream.image_id == "0123456789ab"


def test_a_failing_step_becomes_an_error_with_the_instruction_and_the_log_tail() -> None:
    stream = BuildStream()
    for message in messages(
        "Step 1/2 : FROM base", "Step 2/2 : RUN pip install -r lock", " ---> Running in f00"
    ):
        stream.feed(message)
    for line in [f"line {n}" for n in range(30)]:
        stream.feed({"stream": line + "\n"})
    stream.feed({"error": "The command '/bin/sh -c pip install -r lock' returned a non-zero code: 1"})
    error = stream.failure()
    assert isinstance(error, BuildFailedError)
    assert error.step == "2/2"
    assert error.instruction == "RUN pip install -r lock"
    assert error.log_tail[-1].startswith("The command")
    assert "line 29" in error.log_tail and "line 0" not in error.log_tail
    assert "Running in" not in str(error)
    assert error.exit_code == 2


def test_build_stream_redacts_credentials_in_the_log() -> None:
    stream = BuildStream()
    stream.feed({"stream": "Step 1/1 : RUN pip install\n"})
    stream.feed({"stream": "Looking in indexes: https://user:hunter2secret@pypi.example/simple\n"})
    assert "hunter2secret" not in "\n".join(stream.tail)


def context(dockerfile: str, **files: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_fake_engine_builds_from_the_real_context_and_keeps_labels() -> None:
    engine = FakeEngine()
    events: list[BuildEvent] = []
    built = engine.build(
        context('FROM base\nLABEL io.envrepro.snapshot.digest="abc"\n'),
        tag="x:1",
        options=BuildOptions(events.append),
    )
    assert engine.image_exists("x:1")
    assert engine.inspect_image("x:1").labels == {"io.envrepro.snapshot.digest": "abc"}
    assert built.tags == ("x:1",)
    assert len(events) == 2
    engine.tag_image("x:1", "y:2")
    assert engine.inspect_image("y:2").image_id == built.image_id


def test_fake_engine_scripted_failure_raises_the_same_error_as_the_real_one() -> None:
    engine = FakeEngine(
        build_messages=[*messages("Step 1/1 : RUN false"), {"error": "returned a non-zero code: 1"}]
    )
    with pytest.raises(BuildFailedError, match="RUN false"):
        engine.build(context("FROM base\nRUN false\n"), tag="x:1")
    assert not engine.image_exists("x:1")


def test_fake_engine_runs_handlers_on_uploaded_files_and_records_the_container_options() -> None:
    def handler(command: object, fs: ContainerFs, env: object) -> RunResult:
        (fs.path("/v/out.txt")).write_bytes(fs.path("/v/in.txt").read_bytes() + b"!")
        return RunResult(0, "ran")

    engine = FakeEngine(handlers={"img": handler})
    spec = ContainerSpec("img", ("python3", "-V"), user="10001:10001", volumes=("/v",))
    container = engine.create_container(spec)
    with pytest.raises(EngineError, match="read-only"):
        engine.put_archive(container, "/etc", context("FROM x"))  # outside a volume: refused
    engine.put_archive(container, "/v", context("", **{"in.txt": b"hello"}))
    assert engine.start_container(container, 60).logs == "ran"
    with tarfile.open(fileobj=io.BytesIO(b"".join(engine.get_archive(container, "/v")))) as archive:
        assert archive.extractfile("v/out.txt").read() == b"hello!"  # type: ignore[union-attr]
    engine.remove_container(container)
    assert engine.runs[0].network_disabled and engine.runs[0].user == "10001:10001"
    assert engine.removed_containers == 1
    other = engine.create_container(ContainerSpec("other", ("python3",)))
    assert engine.start_container(other, 60).exit_code == 127


def test_docker_engine_without_an_engine_names_docker_host(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/none.sock"
    with pytest.raises(EngineUnavailableError) as caught:
        DockerEngine({"DOCKER_HOST": host})
    assert f"DOCKER_HOST={host}" in str(caught.value)


def test_build_without_an_engine_is_one_line_naming_docker_host(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    snap = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
    result = cli("build", "--snapshot", str(snap), "--out", str(tmp_path / "b"))
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert f"DOCKER_HOST=unix://{tmp_path}/no-engine.sock" in result.error_lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()


def test_colour_codes_in_the_build_log_are_stripped() -> None:
    stream = BuildStream()
    stream.feed({"stream": "Step 1/1 : RUN pip install\n"})
    stream.feed({"stream": "\x1b[91mERROR: No matching distribution\n\x1b[0m\n"})
    stream.feed({"error": "returned a non-zero code: 1"})
    assert "ERROR: No matching distribution" in stream.failure().log_tail
    assert "\x1b" not in str(stream.failure())
