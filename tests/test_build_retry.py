"""A build that lost a race on a shared engine is built again; any other failure is not.

The legacy builder looks for a cached step among the children of the step before; when another build
removes such a child while it looks, the build fails with 'unable to find image "sha256:..."' (seen in a
.ci/run with four sessions on one engine). `envrepro build` and bisect's variants build again then, at most
CACHE_RACE_RETRIES times, and say so; a real failure is reported as before, after one build.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest
from conftest import CASES
from support.fake_engine import FakeEngine

import envrepro.build
import envrepro.cli
from envrepro.cli import main
from envrepro.console import err
from envrepro.engine_api import CACHE_RACE_RETRIES, DEFAULT_BUILD, BuildOptions, build_image
from envrepro.errors import BuildFailedError
from envrepro.target import BuiltImage, Lock

SNAPSHOT = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
LOST = 'unable to find image "sha256:6f1c0b5e2a7d9c3b4e8f0a1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f3"'


class RacingEngine(FakeEngine):
    """A fake engine whose first `failures` builds fail with `error` at step 2 of 3."""

    def __init__(self, failures: int, error: str) -> None:
        super().__init__()
        self.failures, self.error, self.attempts = failures, error, 0

    def build(self, context_tar: bytes, *, tag: str, options: BuildOptions = DEFAULT_BUILD) -> BuiltImage:
        self.attempts += 1
        self.build_messages = self._failing() if self.attempts <= self.failures else None
        return super().build(context_tar, tag=tag, options=options)

    def _failing(self) -> list[dict[str, Any]]:
        return [
            {"stream": "Step 1/3 : FROM base AS builder\n"},
            {"stream": "Step 2/3 : RUN pip install x\n"},
            {"error": self.error},
        ]


def dockerfile_only(text: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(text.encode())
        archive.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


@pytest.fixture
def racing(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`envrepro build` on the engine the test puts under "engine", with a lock that needs no index; what
    it writes to stderr under "stderr"."""
    holder: dict[str, Any] = {"stderr": io.StringIO()}
    monkeypatch.setattr(envrepro.cli, "DockerEngine", lambda: holder["engine"])
    monkeypatch.setattr(envrepro.build, "compute_lock", lambda *_a, **_k: Lock(text="", requirements=()))
    monkeypatch.setattr(err, "_file", holder["stderr"])  # the CLI's stderr console
    return holder


def test_a_build_that_lost_the_cache_race_is_built_again_and_says_so(racing, tmp_path) -> None:
    racing["engine"] = engine = RacingEngine(failures=1, error=LOST)
    code = main(["build", "--snapshot", str(SNAPSHOT), "--out", str(tmp_path / "build")])
    assert code == 0
    assert engine.attempts == 2
    said = " ".join(racing["stderr"].getvalue().split())  # the console wraps long lines
    assert "removed by another build meanwhile; building again (1 of 2)" in said, said
    assert any(tag.startswith("envrepro:") for tag in engine.images)


def test_any_other_build_failure_is_reported_after_one_build(racing, tmp_path) -> None:
    racing["engine"] = engine = RacingEngine(failures=1, error="The command returned a non-zero code: 1")
    code = main(["build", "--snapshot", str(SNAPSHOT), "--out", str(tmp_path / "build")])
    assert code == 2
    assert engine.attempts == 1
    said = racing["stderr"].getvalue()
    assert "image build failed at step 2/3: RUN pip install x" in said and "building again" not in said


def test_a_race_that_keeps_being_lost_stops_after_the_retries_with_the_engines_words() -> None:
    engine = RacingEngine(failures=CACHE_RACE_RETRIES + 5, error=LOST)
    with pytest.raises(BuildFailedError, match="unable to find image"):
        build_image(engine, dockerfile_only("FROM base\nRUN pip install x\n"), tag="x:1")
    assert engine.attempts == 1 + CACHE_RACE_RETRIES
