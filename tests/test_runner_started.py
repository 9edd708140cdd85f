"""runner.started_probe without a daemon: the probe's container runs in a thread of its own while the
caller's block works (parity reads its training side then), and it is removed however the block ends."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import pytest
from support.fake_engine import ContainerFs, FakeEngine

from envrepro import runner
from envrepro.engine_api import ImageInfo, RunResult
from envrepro.errors import EngineError, ProbeTimeoutError
from envrepro.runner import OUT_DIR

IMAGE = "envrepro-test/started:1"
DONE = RunResult(0, "ok")


class Probe:
    """Plays the probe: writes its record; remembers the thread the engine ran it in."""

    def __init__(self, result: RunResult = DONE, error: Exception | None = None) -> None:
        self.result, self.error = result, error
        self.threads: list[threading.Thread] = []

    def __call__(self, command: Sequence[str], fs: ContainerFs, environment: Mapping[str, str]) -> RunResult:
        self.threads.append(threading.current_thread())
        if self.error is not None:
            raise self.error
        fs.path(f"{OUT_DIR}/record.json").write_bytes(b'{"environment": {"python": "3.11"}}')
        return self.result


def engine_with(probe: Probe) -> FakeEngine:
    return FakeEngine(images={IMAGE: ImageInfo("sha256:1", 1, (IMAGE,), {}, ())}, handlers={IMAGE: probe})


def test_the_probe_runs_in_a_thread_of_its_own_and_its_output_comes_back() -> None:
    probe = Probe()
    engine = engine_with(probe)
    with runner.started_probe(engine, IMAGE) as running:
        caller = threading.current_thread()
        output = running.output()
    assert probe.threads and probe.threads[0] is not caller
    assert output.record == {"environment": {"python": "3.11"}}
    assert engine.containers == {} and engine.removed_containers == 1


def test_an_error_in_the_callers_block_removes_the_container_unread() -> None:
    engine = engine_with(Probe())
    with pytest.raises(ValueError, match="the reference"), runner.started_probe(engine, IMAGE):
        raise ValueError("the reference does not match its digest")
    assert engine.containers == {} and engine.removed_containers == 1


def test_an_engine_error_while_the_probe_runs_comes_out_of_output() -> None:
    engine = engine_with(Probe(error=EngineError("start the container", "boom")))
    with pytest.raises(EngineError, match="boom"), runner.started_probe(engine, IMAGE) as running:
        running.output()
    assert engine.containers == {}


def test_a_probe_that_ran_out_of_time_is_the_same_error_as_run_probes() -> None:
    engine = engine_with(Probe(RunResult(-1, "", timed_out=True)))
    limits = runner.Limits(timeout_s=5)
    with pytest.raises(ProbeTimeoutError), runner.started_probe(engine, IMAGE, limits=limits) as running:
        running.output()
    assert engine.containers == {}
