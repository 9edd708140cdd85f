"""The extra engines the remote-engine tests run against, each started by a script of .ci/run:

- "dind": a second Docker engine in a container of this machine's engine (.ci/dind.sh), reached at
  127.0.0.1 over TCP with TLS only; none of this machine's paths exist there.
- "podman": Podman's Docker-compatible API on a unix socket (.ci/podman.sh), rootful.

Each script writes an `env` file (DOCKER_HOST, ...) into its directory; a fixture reads it, reaches the
engine through envrepro's own connect.py and skips loudly when it is not there (fails when
ENVREPRO_REQUIRE_DOCKER=1, as in CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from envrepro.engine import DockerEngine
from envrepro.errors import EnvreproError

CACHE = Path.home() / ".cache" / "envrepro"
BASE_IMAGE = os.environ.get("ENVREPRO_TEST_BASE_IMAGE", "envrepro-test/python:3.11-bookworm")
EXTRA_ENGINES = ("dind", "podman")
_DIRS = {"dind": "ENVREPRO_DIND_DIR", "podman": "ENVREPRO_PODMAN_DIR"}
_SCRIPTS = {"dind": ".ci/dind.sh", "podman": ".ci/podman.sh"}


@dataclass(frozen=True)
class ExtraEngine:
    """An engine other than this machine's default one, and the environment that reaches it."""

    name: str
    env: Mapping[str, str]  # DOCKER_* variables only
    engine: DockerEngine

    def process_env(self, **extra: str) -> dict[str, str]:
        """os.environ with this engine's DOCKER_* variables instead of the machine's, plus `extra`."""
        base = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
        return {**base, **self.env, **extra}

    def cli(self, argv: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
        """`envrepro ARGS` as a separate process pointed at this engine."""
        return subprocess.run(
            [sys.executable, "-m", "envrepro", *argv],
            capture_output=True,
            text=True,
            check=False,
            env=self.process_env(**extra),
        )


def engine_env(name: str) -> dict[str, str]:
    """The DOCKER_* variables the engine's .ci script wrote; {} when it has not run."""
    folder = Path(os.environ.get(_DIRS[name], str(CACHE / name)))
    env_file = folder / "env"
    if not env_file.is_file():
        return {}
    pairs = (line.split("=", 1) for line in env_file.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {key: value for key, value in pairs if key.startswith("DOCKER_")}


def require(what: str, why: str) -> None:
    """Skip loudly, or fail when CI demands every engine (ENVREPRO_REQUIRE_DOCKER=1)."""
    message = f"{what} not available: {why}"
    if os.environ.get("ENVREPRO_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{message} (ENVREPRO_REQUIRE_DOCKER=1)")
    pytest.skip(message)


def reach(name: str) -> ExtraEngine:
    env = engine_env(name)
    if not env:
        require(f"the {name} engine", f"run `bash {_SCRIPTS[name]}`")
    try:
        engine = DockerEngine(env)
    except EnvreproError as exc:
        require(f"the {name} engine", f"{exc} (start it with `bash {_SCRIPTS[name]}`)")
    if not engine.image_exists(BASE_IMAGE):
        require(f"the base image {BASE_IMAGE} in the {name} engine", f"run `bash {_SCRIPTS[name]}`")
    return ExtraEngine(name, env, engine)


@pytest.fixture(scope="session", params=EXTRA_ENGINES)
def extra_engine(request: pytest.FixtureRequest) -> Iterator[ExtraEngine]:
    """Each extra engine in turn (dind over TLS, podman); `envrepro:<digest>` tags its builds added are
    removed afterwards, the fixed test tags stay so that the next run rebuilds them from the cache."""
    engine = reach(str(request.param))
    before = _default_tags(engine.engine)
    yield engine
    for tag in _default_tags(engine.engine) - before:
        engine.engine.client.images.remove(tag, noprune=True)


@pytest.fixture(scope="session")
def dind_engine() -> ExtraEngine:
    """The docker-in-docker engine alone (the TLS and docker-context tests)."""
    return reach("dind")


def _default_tags(engine: DockerEngine) -> set[str]:
    tags = {tag for image in engine.client.images.list() for tag in image.tags}
    return {tag for tag in tags if tag.rpartition("/")[2].startswith("envrepro:")}
