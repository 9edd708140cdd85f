"""`envrepro build` against the real Docker engine: a real TF snapshot becomes a real image.

The images use fixed tags and are rebuilt in place, so repeated runs hit the engine's cache instead of
filling the disk; the images a test creates only for itself are removed.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import (
    BASE_IMAGE,
    CPU_TAG,
    OWN_CONTAINERS,
    PLANTED_CA_MARK,
    PLANTED_TOKEN,
    RUN_ID,
    CliResult,
    OwnImages,
    _run_cli,
    build_args,
    own_tag,
    reused_lock,
)

from envrepro import snapshot as snapshot_mod
from envrepro.build import BuildRequest, build
from envrepro.engine import DockerEngine
from envrepro.engine_api import BuildEvent
from envrepro.errors import EnvreproError
from envrepro.runner import Limits, run_command

pytestmark = [pytest.mark.integration, pytest.mark.docker]

GPU_CACHE_TAG = "envrepro-test/tf221:gpu"  # holds the layers for the next run; other runs retag it
GPU_TAG = own_tag("envrepro-test/tf221", "gpu")  # this session's, removed at its end


def freeze(engine: DockerEngine, image: str) -> dict[str, str]:
    result = run_command(engine, image, ["python", "-m", "pip", "freeze", "--all"], Limits(timeout_s=120),
                         environment={"HOME": "/tmp"})  # fmt: skip
    assert result.exit_code == 0, result.logs
    pins = [line.split("==") for line in result.logs.splitlines() if "==" in line]
    return {snapshot_mod.normalize_name(name): version for name, version in pins}


def test_cpu_image_imports_tensorflow_and_reports_image_and_size(
    cpu_build: tuple[CliResult, Path], docker_engine: DockerEngine
) -> None:
    result, out = cpu_build
    assert "image sha256:" in result.stdout and CPU_TAG in result.stdout and "MB" in result.stdout
    assert (out / "Dockerfile").is_file() and (out / "requirements.lock.txt").is_file()
    command = ["python", "-c", "import tensorflow as tf; print(tf.__version__)"]
    run = run_command(docker_engine, CPU_TAG, command, Limits(timeout_s=300), environment={"HOME": "/tmp"})
    assert run.exit_code == 0, run.logs
    assert run.logs.strip().splitlines()[-1] == "2.21.0"


def test_cpu_image_runs_as_non_root_with_snapshot_labels(cpu_build: object, docker_engine: DockerEngine,
                                                        tf_snapshot: Path) -> None:  # fmt: skip
    info = docker_engine.inspect_image(CPU_TAG)
    assert info.labels["io.envrepro.snapshot.digest"] == snapshot_mod.load(tf_snapshot).digest()
    run = run_command(docker_engine, CPU_TAG, ["id", "-u"], Limits(timeout_s=60))
    assert run.logs.strip() == "10001"


def test_pip_freeze_in_image_equals_snapshot_apart_from_named_exclusions(
    cpu_build: tuple[CliResult, Path], docker_engine: DockerEngine, tf_snapshot: Path
) -> None:
    result, _ = cpu_build
    snap = snapshot_mod.load(tf_snapshot)
    wanted = {snapshot_mod.normalize_name(d.name): d.version for d in snap.environment.distributions}
    got = freeze(docker_engine, CPU_TAG)
    differing = {name for name in wanted.keys() | got.keys() if wanted.get(name) != got.get(name)}
    # Every difference is a package the build report names with a reason ("left out: NAME: why").
    named = {
        line.split(":")[1].strip() for line in result.stderr.splitlines() if line.startswith("left out:")
    }
    assert differing <= named, f"unexplained differences: {sorted(differing - named)}"
    assert "tensorflow-cpu" in got and got["tensorflow-cpu"] == wanted["tensorflow-cpu"]


def _layer_files(engine: DockerEngine, image: str) -> dict[str, bytes]:
    """Every file of every layer of the saved image, plus the image config (which holds the history)."""
    saved = b"".join(engine.export_image(image))
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        for member in outer.getmembers():
            handle = outer.extractfile(member) if member.isfile() else None
            if handle is None:
                continue
            data = handle.read()
            if member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for inner in layer.getmembers():
                        content = layer.extractfile(inner) if inner.isfile() else None
                        files[f"{member.name}:{inner.name}"] = content.read() if content else b""
            else:
                files[member.name] = data
    return files


def test_index_credentials_and_ca_reach_the_builder_stage_only(
    cpu_build: tuple[CliResult, Path], docker_engine: DockerEngine
) -> None:
    result, out = cpu_build
    files = _layer_files(docker_engine, CPU_TAG)
    assert len(files) > 1000  # the venv with TensorFlow is in there
    leaks = [name for name, data in files.items()
             if PLANTED_TOKEN.encode() in data or PLANTED_CA_MARK.encode() in data]  # fmt: skip
    assert leaks == []
    assert not any("envrepro-pip" in name for name in files)
    history = "\n".join(docker_engine.inspect_image(CPU_TAG).history)
    assert PLANTED_TOKEN not in history and "pip.conf" not in history
    # ... and the credentials are not in what the user sees or keeps: the output, the build directory
    # (the CA bundle is public: build/pip/ca.pem keeps it so that `docker build build/` works by hand)
    assert PLANTED_TOKEN not in result.stdout + result.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert PLANTED_TOKEN.encode() not in path.read_bytes(), path


def test_rebuild_of_unchanged_snapshot_hits_the_cache(
    cpu_build: tuple[CliResult, Path], docker_engine: DockerEngine, tf_snapshot: Path, planted_cert: Path
) -> None:
    _, out = cpu_build
    events: list[BuildEvent] = []
    index = f"https://envrepro:{PLANTED_TOKEN}@pypi.org/simple"
    request = BuildRequest(snapshot_path=tf_snapshot, out_dir=out, target="cpu", base_image=BASE_IMAGE,
                           tag=CPU_TAG, pip_cert=planted_cert, index_urls=(index,))  # fmt: skip
    first = docker_engine.inspect_image(CPU_TAG).image_id
    again = build(request, lambda: docker_engine, events.append)
    assert again.image is not None and again.image.image_id == first
    steps = {event.step: event for event in events}
    uncached = [e.instruction for e in steps.values() if not e.instruction.startswith("FROM")]
    cached = {e.step for e in events if e.cached}
    assert uncached and all(
        step in cached for step, e in steps.items() if not e.instruction.startswith("FROM")
    )


def test_build_with_a_pin_that_does_not_exist_fails_clearly_and_leaves_nothing(
    docker_engine: DockerEngine, tf_snapshot: Path, planted_cert: Path, tmp_path: Path
) -> None:
    raw = json.loads(tf_snapshot.read_text(encoding="utf-8"))
    for dist in raw["environment"]["distributions"]:
        if dist["name"] == "six" or snapshot_mod.normalize_name(dist["name"]) == "numpy":
            dist["version"] = "0.0.424242"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw), encoding="utf-8")
    out, tag = tmp_path / "build", own_tag("envrepro-test/bad", "pin")
    result = _run_cli(build_args(bad, out, planted_cert, "--tag", tag))
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "0.0.424242" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and PLANTED_TOKEN not in result.stderr
    assert not out.exists()
    assert not docker_engine.image_exists(tag)
    assert docker_engine.running_containers(OWN_CONTAINERS) == []  # what this session's envrepro started


def test_failing_dockerfile_step_names_the_instruction_and_leaves_no_container(
    docker_engine: DockerEngine,
) -> None:
    marker = f"envrepro-failing-step-{RUN_ID}"  # finds this test's build step among other runs' containers
    tag = own_tag("envrepro-test/failing", "step")
    dockerfile = f"FROM {BASE_IMAGE}\nRUN echo {marker} && echo 'the cause' >&2 && exit 3\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
    with pytest.raises(EnvreproError) as caught:
        docker_engine.build(buffer.getvalue(), tag=tag)
    message = str(caught.value)
    assert f"RUN echo {marker}" in message and "the cause" in message and "2/2" in message
    assert _marker_containers(docker_engine, marker) == []
    assert not docker_engine.image_exists(tag)


def test_parity_containers_never_outlive_the_run(docker_engine: DockerEngine) -> None:
    assert docker_engine.running_containers(OWN_CONTAINERS) == []


@pytest.mark.gpu_image
def test_gpu_variant_on_pip_cuda_wheels_builds_and_imports_tensorflow_on_a_cpu_machine(
    docker_engine: DockerEngine, own_images: OwnImages, tf_snapshot: Path, planted_cert: Path, tmp_path: Path
) -> None:
    gpu_snapshot = tmp_path / "gpu.json"
    gpu_snapshot.write_text(
        json.dumps(as_gpu_snapshot(json.loads(tf_snapshot.read_text()))), encoding="utf-8"
    )
    with reused_lock(tmp_path / "build", "tf221-gpu"):
        result = _run_cli(build_args(gpu_snapshot, tmp_path / "build", planted_cert, "--tag", GPU_TAG))
    assert result.exit_code == 0, result.stderr
    own_images.share_cache(GPU_TAG, GPU_CACHE_TAG)
    assert "target: gpu (gpu-wheels)" in result.stderr
    lock = (tmp_path / "build" / "requirements.lock.txt").read_text()
    assert "nvidia-cudnn-cu12==9.3.0.75" in lock and "--hash=sha256:" in lock
    command = ["python", "-c", "import tensorflow as tf; print(tf.__version__, tf.test.is_built_with_cuda())"]
    run = run_command(docker_engine, GPU_TAG, command, Limits(timeout_s=300), environment={"HOME": "/tmp"})
    assert run.exit_code == 0, run.logs
    assert run.logs.strip().splitlines()[-1] == "2.21.0 True"


# What `pip install tensorflow[and-cuda]==2.21.0` adds on a GPU training machine: TensorFlow's own
# lower bounds for its and-cuda extra (from the wheel's METADATA), which are real releases.
AND_CUDA_2_21 = {
    "nvidia-cublas-cu12": "12.5.3.2",
    "nvidia-cuda-cupti-cu12": "12.5.82",
    "nvidia-cuda-nvcc-cu12": "12.5.82",
    "nvidia-cuda-nvrtc-cu12": "12.5.82",
    "nvidia-cuda-runtime-cu12": "12.5.82",
    "nvidia-cudnn-cu12": "9.3.0.75",
    "nvidia-cufft-cu12": "11.2.3.61",
    "nvidia-curand-cu12": "10.3.6.82",
    "nvidia-cusolver-cu12": "11.6.3.83",
    "nvidia-cusparse-cu12": "12.5.1.3",
    "nvidia-nccl-cu12": "2.27.7",
    "nvidia-nvjitlink-cu12": "12.5.82",
}


def as_gpu_snapshot(raw: dict[str, object]) -> dict[str, object]:
    """The TF 2.21 snapshot as a GPU machine with `tensorflow[and-cuda]` records it."""
    env = raw["environment"]
    assert isinstance(env, dict)
    is_tf = lambda d: snapshot_mod.normalize_name(d["name"]) == "tensorflow-cpu"  # noqa: E731
    dists = [d for d in env["distributions"] if not is_tf(d)]
    template = next(d for d in env["distributions"] if is_tf(d))
    dists.append({**template, "name": "tensorflow"})
    dists += [{**template, "name": name, "version": version, "requested": False}
              for name, version in AND_CUDA_2_21.items()]  # fmt: skip
    env["distributions"] = sorted(dists, key=lambda d: d["name"])
    if env.get("tensorflow"):
        env["tensorflow"] = {**env["tensorflow"], "built_with_cuda": True}
    return raw


INTERRUPTED_BUILD = """
import io, sys, tarfile
from envrepro.engine import DockerEngine
from envrepro.engine_api import BuildOptions
dockerfile = b"FROM %s\\nRUN sleep 300 && echo %s\\n"
buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w") as archive:
    info = tarfile.TarInfo("Dockerfile")
    info.size = len(dockerfile)
    archive.addfile(info, io.BytesIO(dockerfile))
try:
    DockerEngine().build(buffer.getvalue(), tag="%s", options=BuildOptions(no_cache=True))
except KeyboardInterrupt:
    sys.exit(130)
"""


def _marker_containers(engine: DockerEngine, marker: str) -> list[str]:
    """The containers running a build step whose command carries `marker` (this session's own: build
    steps carry no run-id label, so the marker holds the run id). One listing call: no race with removal."""
    listed = engine.client.api.containers(all=True)
    return [str(c["Id"]) for c in listed if marker in str(c.get("Command", ""))]


def test_ctrl_c_stops_the_build_and_leaves_no_container(docker_engine: DockerEngine) -> None:
    import signal
    import time

    marker, tag = f"envrepro-interrupt-marker-{RUN_ID}", own_tag("envrepro-test/interrupted", "build")
    script = INTERRUPTED_BUILD % (BASE_IMAGE, marker, tag)
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(600):  # wait (not a time limit on the code under test) for the step to start
            if _marker_containers(docker_engine, marker):
                break
            time.sleep(0.1)
        assert _marker_containers(docker_engine, marker), "the build step never started"
        process.send_signal(signal.SIGINT)
        assert process.wait() == 130
        for _ in range(300):  # the engine cancels the step and removes its container
            if not _marker_containers(docker_engine, marker):
                break
            time.sleep(0.1)
        assert _marker_containers(docker_engine, marker) == []
        assert not docker_engine.image_exists(tag)
    finally:
        process.kill()
