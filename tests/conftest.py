"""Shared fixtures: real target environments with TensorFlow, real models saved by them, and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

import envs
import schedule
from engines import dind_engine, extra_engine, ssh_endpoint  # noqa: F401 - fixtures of the remote-engine tests
from owned import OWN_CONTAINERS, RUN_ID, OwnImages, own_tag, reused_lock  # noqa: F401 - RUN_ID is set at import

from envrepro.cli import main
from envrepro.engine import DockerEngine
from envrepro.errors import EnvreproError

SUPPORT = Path(__file__).parent / "support"

# Started in the background by a script (`cmd &`, nohup, some CI runners), a process inherits SIGINT
# ignored, and Python then leaves it ignored: the Ctrl-C tests' envrepro would never see their SIGINT
# (this is how they failed with exit 0 in a CI log). As on a terminal, SIGINT is Ctrl-C for the session
# and the processes it starts (an exec resets a handled signal to its default).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
CASES = Path(__file__).parent / "cases"


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `envrepro ARGS` in-process through main(argv), as a user would see it."""

    def invoke(*args: str) -> CliResult:
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def plain_snapshot(plain_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small snapshot (no TensorFlow): its lock and its builder stage take seconds."""
    out = tmp_path_factory.mktemp("plain-snapshot") / "envrepro.lock.json"
    result = _run_cli(["snapshot", "--python", str(plain_python), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def plain_python() -> Path:
    """A real virtualenv with no TensorFlow (fast probe)."""
    return envs.ensure("plain")


@pytest.fixture(scope="session")
def tf_python() -> Path:
    """A real virtualenv with the current TensorFlow (tensorflow-cpu 2.21, Keras 3)."""
    return envs.ensure("tf-2.21.0")


@pytest.fixture(scope="session")
def tf215_python() -> Path:
    """A real virtualenv with TensorFlow 2.15.1 and Keras 2."""
    return envs.ensure("tf-2.15.1")


def _make_models(python: Path, outdir: Path) -> Path:
    subprocess.run(
        [str(python), str(SUPPORT / "make_models.py"), str(outdir)], check=True, capture_output=True
    )
    return outdir


@pytest.fixture(scope="session")
def tf_models(tf_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models saved by TF 2.21 / Keras 3: dense.{h5,keras}, dense_savedmodel/, custom.h5, ..."""
    return _given(TF_MODELS_FROM) or _make_models(tf_python, tmp_path_factory.mktemp("models-tf221"))


# The files a session that starts others hands them (tests/test_parallel_sessions.py), read only: made by
# TensorFlow on the host, they are no engine state; each session still builds, tags and runs its own.
TF_MODELS_FROM = "ENVREPRO_TEST_TF_MODELS"
TF_SNAPSHOT_FROM = "ENVREPRO_TEST_TF_SNAPSHOT"


def _given(variable: str) -> Path | None:
    given = os.environ.get(variable)
    if given and not Path(given).exists():
        raise pytest.UsageError(f"{variable}={given}: no such file")
    return Path(given) if given else None


@pytest.fixture(scope="session")
def tf215_models(tf215_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same models saved by TF 2.15.1 / Keras 2."""
    return _make_models(tf215_python, tmp_path_factory.mktemp("models-tf215"))


BASE_IMAGE = os.environ.get("ENVREPRO_TEST_BASE_IMAGE", "envrepro-test/python:3.11-bookworm")


def _require(variable: str, what: str, why: str) -> None:
    """Skip loudly, or fail when CI demands the component ($variable=1)."""
    message = f"{what} not available: {why}"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{message} ({variable}=1)")
    pytest.skip(message)


_SESSION_IMAGES: list[OwnImages] = []  # this session's images on the machine's engine (at most one)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """The real Docker engine (DOCKER_HOST respected), with the debootstrap test base image present.

    The engine is shared with other runs: afterwards only the tags this session put on the images it
    built go (and an image with none left); the fixed cache tags stay, so that the next run builds from
    the engine's cache. Nothing is pruned engine-wide."""
    try:
        engine = DockerEngine()
    except EnvreproError as exc:
        _require("ENVREPRO_REQUIRE_DOCKER", "a Docker engine", str(exc))
    if not engine.image_exists(BASE_IMAGE):
        _require("ENVREPRO_REQUIRE_DOCKER", f"the base image {BASE_IMAGE}", "run `bash .ci/base-image.sh`")
    own = OwnImages(engine)
    _SESSION_IMAGES.append(own)
    try:
        yield engine
    finally:
        _SESSION_IMAGES.remove(own)
        own.remove()


@pytest.fixture(scope="session")
def own_images(docker_engine: DockerEngine) -> OwnImages:
    """The images this session built on the machine's engine; removed at the end of the session."""
    return _SESSION_IMAGES[0]


# ---------------------------------------------------------------------------------------------------------
# A real TF snapshot and its CPU image, shared by the build and parity tests (built once per session)

CPU_CACHE_TAG = "envrepro-test/tf221:cpu"  # holds the layers for the next run; other runs retag it
CPU_TAG = own_tag("envrepro-test/tf221", "cpu")  # what the tests use: this session's build, until its end
# Planted into the forwarded pip configuration; must reach the builder stage only.
PLANTED_TOKEN = "envrepro-planted-token-5b7e1c9d"
PLANTED_CA_MARK = "# envrepro-planted-ca-marker-2f9a6e41"


@pytest.fixture(scope="session")
def tf_snapshot(tf_python: Path, tf_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real snapshot of the TF 2.21 environment with reference outputs of the test models."""
    given = _given(TF_SNAPSHOT_FROM)
    if given:
        return given
    out = tmp_path_factory.mktemp("tf221-snapshot") / "envrepro.lock.json"
    models = ["dense.h5", "dense.keras", "dense_savedmodel", "custom.h5", "cnn.keras"]
    argv = ["snapshot", "--python", str(tf_python), "-o", str(out), "--samples", "32"]
    argv += [arg for name in models for arg in ("--model", str(tf_models / name))]
    argv += ["--custom-objects", str(tf_models / "custom_layers.py")]
    result = _run_cli(argv)
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def planted_cert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host's CA bundle (the proxy's CA is in it) plus a marker line that must never reach the image."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_text(f"{bundle}\n{PLANTED_CA_MARK}\n", encoding="utf-8")
    return path


def build_args(snap: Path, out: Path, cert: Path, *extra: str) -> list[str]:
    # Credentials in the index URL: pip sends them to the index; they must stay in the builder stage.
    index = f"https://envrepro:{PLANTED_TOKEN}@pypi.org/simple"
    return ["build", "--snapshot", str(snap), "--base-image", BASE_IMAGE, "--out", str(out),
            "--pip-cert", str(cert), "--index-url", index, *extra]  # fmt: skip


@pytest.fixture(scope="session")
def cpu_build(
    docker_engine: DockerEngine,
    tf_snapshot: Path,
    planted_cert: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[CliResult, Path]:
    """`envrepro build` of the TF snapshot's CPU image, as a user runs it; (its output, the build dir)."""
    out = tmp_path_factory.mktemp("build-cpu") / "build"
    with reused_lock(out, "tf221-cpu"):  # pip-compile of TensorFlow's tree takes minutes; its lock is reused
        result = _run_cli(build_args(tf_snapshot, out, planted_cert, "--tag", CPU_TAG, "--target", "cpu"))
    assert result.exit_code == 0, result.stderr
    _SESSION_IMAGES[0].share_cache(CPU_TAG, CPU_CACHE_TAG)
    return result, out


def _run_cli(argv: list[str]) -> CliResult:
    """`envrepro ARGS` as a separate process, as a user (or CI) runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "envrepro", *argv], capture_output=True, text=True, check=False
    )
    built = argv[:1] == ["build"] and "--tag" in argv and "--render-only" not in argv
    if built and done.returncode == 0 and _SESSION_IMAGES:
        _SESSION_IMAGES[0].built(argv[argv.index("--tag") + 1])  # removed at the end of the session
    return CliResult(done.returncode, done.stdout, done.stderr)


APART = ("gpu_image", "bisect_builds")  # markers whose tests run only when -m or --run-apart names them


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-apart",
        action="append",
        default=[],
        choices=APART,
        help="also run the tests with this marker, which run only when named (.ci/run names both)",
    )


# The tests that look at the engine's state; tests/test_parallel_sessions.py runs them in two sessions
# side by side. A session that runs that test leaves them to it (they would run a third time otherwise).
PARALLEL_SESSIONS_TEST = (
    "tests/test_parallel_sessions.py::test_two_sessions_side_by_side_on_one_engine_both_pass"
)
ENGINE_STATE_TESTS = (
    "tests/test_signals_docker.py",
    "tests/test_shared_engine.py",
    "tests/test_parity_docker.py::test_timeout_stops_and_removes_the_container",
    "tests/test_parity_docker.py::test_ctrl_c_during_parity_removes_the_container",
)


def engine_state_test(nodeid: str) -> bool:
    return any(nodeid == name or nodeid.startswith((f"{name}::", f"{name}[")) for name in ENGINE_STATE_TESTS)


@pytest.hookimpl(trylast=True)  # after -m and -k: the parallel-sessions test must really be selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that take many minutes even from the cache run only when named: by the -m expression or by
    --run-apart. They are the GPU image (a 5.3 GB image; `pytest -m gpu_image`) and bisect's searches
    that build derived TensorFlow images (`pytest -m bisect_builds`). .ci/run names both with --run-apart,
    so they share its workers with the rest (ENVREPRO_CI_GPU_IMAGE=0, ENVREPRO_CI_BISECT_BUILDS=0 leave
    them out). With the parallel-sessions test selected, ENGINE_STATE_TESTS run there, twice at once."""
    named = f"{config.getoption('markexpr') or ''} {' '.join(config.getoption('run_apart'))}"
    markers = [marker for marker in APART if marker not in named]
    apart = [item for item in items if any(item.get_closest_marker(m) for m in markers)]
    if any(item.nodeid == PARALLEL_SESSIONS_TEST for item in items):
        apart += [item for item in items if engine_state_test(item.nodeid)]
    if apart:
        config.hook.pytest_deselected(items=apart)
        items[:] = [item for item in items if item not in apart]
    earlier = getattr(config, "workerinput", {}).get("envrepro_durations")
    ordered = longest_files_first(items)
    by_id = {item.nodeid: item for item in ordered}
    ids = schedule.longest_first(list(by_id), schedule.load() if earlier is None else earlier)
    items[:] = [by_id[nodeid] for nodeid in ids]


def pytest_configure_node(node: Any) -> None:
    """The xdist controller hands each worker the same durations, read once: they must sort alike."""
    if not _EARLIER:
        _EARLIER.append(schedule.load())
    node.workerinput["envrepro_durations"] = _EARLIER[0]


_EARLIER: list[dict[str, float]] = []  # the controller's one read of the durations file


_MEASURED: dict[str, float] = {}  # this session's test durations, by test id


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every phase's duration, in the controller (it gets the workers' reports) or a plain session."""
    _MEASURED[report.nodeid] = _MEASURED.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _MEASURED and not hasattr(session.config, "workerinput"):  # a worker's are its controller's too
        schedule.save(_MEASURED)


def longest_files_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The files that take minutes first: those with a test that runs apart, then those with docker tests,
    then the unit tests, each file's tests in their order. .ci/run's workers take whole files in this order
    (`--dist loadfile --no-loadscope-reorder`), so the many short files come last and even out the end.
    Files that earlier runs measured are then put in the order of their durations (tests/support/schedule.py);
    this order stays for those that were not."""

    def weight(item: pytest.Item) -> int:
        if any(item.get_closest_marker(marker) for marker in APART):
            return 2
        return 1 if item.get_closest_marker("docker") else 0

    heaviest: dict[str, int] = {}
    for item in items:
        heaviest[item.path.name] = max(heaviest.get(item.path.name, 0), weight(item))
    return sorted(items, key=lambda item: -heaviest[item.path.name])  # stable: files keep their order
