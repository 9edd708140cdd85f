"""envrepro against engines other than this machine's default one (tests/support/engines.py):

- dind: a second Docker engine reached at 127.0.0.1 over TCP with TLS (.ci/dind.sh); none of this
  machine's paths exist on it, as on a remote build host or a CI service's docker-in-docker;
- podman: Podman's Docker-compatible API (.ci/podman.sh).

Every test runs with REQUESTS_CA_BUNDLE pointing at an unrelated bundle: the engine must be verified
with its own CA whatever requests' environment says (docker/docker-py#2433, #2598).
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import certifi
import pytest
from conftest import OWN_CONTAINERS, build_args, own_tag, reused_lock
from engines import BASE_IMAGE, ExtraEngine, SshEndpoint

from envrepro import snapshot as snapshot_mod
from envrepro.engine import DockerEngine
from envrepro.engine_api import BuildEvent, BuildOptions
from envrepro.errors import BuildFailedError, EngineUnavailableError

pytestmark = [pytest.mark.integration, pytest.mark.docker]

UNRELATED_BUNDLE = certifi.where()  # public CAs only: the engines' own CAs are not in it


@pytest.fixture(autouse=True)
def unrelated_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", UNRELATED_BUNDLE)
    monkeypatch.setenv("CURL_CA_BUNDLE", UNRELATED_BUNDLE)


def context_tar(dockerfile: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = dockerfile.encode()
        member = tarfile.TarInfo("Dockerfile")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------
# Reaching the engine


def test_engine_is_reached_with_its_own_ca_whatever_requests_ca_bundle_says(
    extra_engine: ExtraEngine,
) -> None:
    engine = DockerEngine(extra_engine.env)
    assert engine.image_exists(BASE_IMAGE)
    assert engine.host == extra_engine.env["DOCKER_HOST"]


def test_the_tls_engine_is_tls_only(dind_engine: ExtraEngine) -> None:
    assert dind_engine.env["DOCKER_TLS_VERIFY"] == "1"
    with pytest.raises(EngineUnavailableError) as caught:  # no certificates: the engine refuses
        DockerEngine({"DOCKER_HOST": dind_engine.env["DOCKER_HOST"]})
    assert caught.value.where == f"DOCKER_HOST={dind_engine.env['DOCKER_HOST']}"


def test_the_tls_engine_is_verified_against_the_ca_given_for_it(
    dind_engine: ExtraEngine, tmp_path: Path
) -> None:
    """Verification is on: the engine's certificate checked against another CA (here requests' own
    bundle given as ca.pem) is refused."""
    certs = Path(dind_engine.env["DOCKER_CERT_PATH"])
    for name in ("cert.pem", "key.pem"):
        shutil.copy(certs / name, tmp_path / name)
    shutil.copy(UNRELATED_BUNDLE, tmp_path / "ca.pem")
    with pytest.raises(EngineUnavailableError) as caught:
        DockerEngine({**dind_engine.env, "DOCKER_CERT_PATH": str(tmp_path)})
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.reason


def test_a_docker_context_made_by_the_docker_cli_reaches_the_tls_engine(
    dind_engine: ExtraEngine, tmp_path: Path
) -> None:
    certs = Path(dind_engine.env["DOCKER_CERT_PATH"])
    host = dind_engine.env["DOCKER_HOST"]
    spec = f"host={host},ca={certs / 'ca.pem'},cert={certs / 'cert.pem'},key={certs / 'key.pem'}"
    env = {"DOCKER_CONFIG": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    for argv in (["context", "create", "dind", "--docker", spec], ["context", "use", "dind"]):
        subprocess.run(["docker", *argv], env=env, check=True, capture_output=True)
    engine = DockerEngine({"DOCKER_CONFIG": str(tmp_path)})  # no DOCKER_HOST: the current context
    assert engine.host == host
    assert engine.image_exists(BASE_IMAGE)


def test_an_ssh_endpoint_reaches_the_engine_behind_it(
    ssh_endpoint: SshEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paramiko, with the key and known_hosts of ~/.ssh (an unknown host would be refused)."""
    monkeypatch.setenv("HOME", str(ssh_endpoint.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    engine = DockerEngine({"DOCKER_HOST": ssh_endpoint.host})
    assert engine.image_exists(BASE_IMAGE)
    assert engine.host == ssh_endpoint.host.replace("root@", "***@")


def test_an_ssh_endpoint_with_an_unknown_host_key_is_refused(
    ssh_endpoint: SshEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ssh_endpoint.home / ".ssh" / "known_hosts").rename(ssh_endpoint.home / "known_hosts.saved")
    monkeypatch.setenv("HOME", str(ssh_endpoint.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    try:
        with pytest.raises(EngineUnavailableError) as caught:
            DockerEngine({"DOCKER_HOST": ssh_endpoint.host})
    finally:
        (ssh_endpoint.home / "known_hosts.saved").rename(ssh_endpoint.home / ".ssh" / "known_hosts")
    assert "not found in known_hosts" in caught.value.reason


# ---------------------------------------------------------------------------------------------------------
# DockerEngine's own calls


def test_build_inspect_and_remove_through_docker_engine(extra_engine: ExtraEngine) -> None:
    engine = extra_engine.engine
    tag = own_tag("envrepro-test/remote-tiny", extra_engine.name)
    dockerfile = f"FROM {BASE_IMAGE}\nLABEL io.envrepro.test=remote\nRUN echo built > /built.txt\n"
    events: list[BuildEvent] = []
    built = engine.build(context_tar(dockerfile), tag=tag, options=BuildOptions(events.append, no_cache=True))
    try:
        assert engine.image_exists(tag)
        info = engine.inspect_image(tag)
        assert info.image_id == built.image_id
        assert info.labels["io.envrepro.test"] == "remote"
        assert [(e.step, e.total) for e in events] == [(1, 3), (2, 3), (3, 3)]  # the build streamed its steps
    finally:
        engine.remove_image(tag)
    assert not engine.image_exists(tag)


def test_failing_build_step_is_named(extra_engine: ExtraEngine) -> None:
    dockerfile = f"FROM {BASE_IMAGE}\nRUN echo about to fail && exit 3\n"
    tag = own_tag("envrepro-test/remote-fails", extra_engine.name)
    with pytest.raises(BuildFailedError) as caught:
        extra_engine.engine.build(context_tar(dockerfile), tag=tag)
    assert caught.value.instruction == "RUN echo about to fail && exit 3"
    assert caught.value.step == "2/2"


# ---------------------------------------------------------------------------------------------------------
# envrepro build of a small snapshot (no TensorFlow), then `diff image:` of what it built


@pytest.fixture(scope="session")
def plain_build(
    extra_engine: ExtraEngine, plain_snapshot: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], str]:
    tag = own_tag("envrepro-test/remote-plain", extra_engine.name)
    out = tmp_path_factory.mktemp(f"plain-build-{extra_engine.name}") / "build"
    argv = ["build", "--snapshot", str(plain_snapshot), "--base-image", BASE_IMAGE, "--out", str(out),
            "--tag", tag, "--pip-cert", "/etc/ssl/certs/ca-certificates.crt"]  # fmt: skip
    result = extra_engine.cli(argv, REQUESTS_CA_BUNDLE=UNRELATED_BUNDLE)
    if result.returncode == 0:  # its layers stay in that engine for the next run
        extra_engine.own.share_cache(tag, f"envrepro-test/remote-plain:{extra_engine.name}")
    return result, tag


def test_envrepro_build_of_a_small_snapshot_runs_on_the_engine(
    plain_build: tuple[subprocess.CompletedProcess[str], str], plain_snapshot: Path, extra_engine: ExtraEngine
) -> None:
    result, tag = plain_build
    assert result.returncode == 0, result.stderr
    info = extra_engine.engine.inspect_image(tag)
    assert info.labels["io.envrepro.snapshot.digest"] == snapshot_mod.load(plain_snapshot).digest()


def test_diff_of_the_built_image_against_its_snapshot_has_nothing_that_breaks_results(
    plain_build: tuple[subprocess.CompletedProcess[str], str], plain_snapshot: Path, extra_engine: ExtraEngine
) -> None:
    """Needs the in-image probe to reach the container without host paths (archive upload/download)."""
    _, tag = plain_build
    result = extra_engine.cli(["diff", str(plain_snapshot), f"image:{tag}", "--format", "json"])
    assert result.returncode == 0, result.stderr
    groups = {d["group"] for d in json.loads(result.stdout)["differences"]}
    assert "breaks" not in groups, result.stdout


# ---------------------------------------------------------------------------------------------------------
# The whole pipeline with TensorFlow: build, parity that passes, parity that fails


@pytest.fixture(scope="session")
def tf_build(
    extra_engine: ExtraEngine, tf_snapshot: Path, planted_cert: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The TF image, built once per session in each engine; its layers stay in that engine for the next run
    (the cache tag), while the tests use this session's own tag."""
    tag = own_tag("envrepro-test/tf221-remote", extra_engine.name)
    out = tmp_path_factory.mktemp(f"tf-build-{extra_engine.name}") / "build"
    with reused_lock(out, "tf221-cpu"):  # the lock is the host's work: the same as the local CPU build's
        result = extra_engine.cli(build_args(tf_snapshot, out, planted_cert, "--tag", tag, "--target", "cpu"))
    assert result.returncode == 0, result.stderr
    extra_engine.own.share_cache(tag, f"envrepro-test/tf221-remote:{extra_engine.name}")
    return tag


def parity(
    engine: ExtraEngine, snap: Path, model: Path, image: str, report: Path, *extra: str
) -> dict[str, object]:
    result = engine.cli(["parity", "--snapshot", str(snap), "--model", str(model), "--image", image,
                         "--report", str(report), *extra])  # fmt: skip
    data: dict[str, object] = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
    return {"exit_code": result.returncode, "stderr": result.stderr, **data}


def test_parity_passes_on_the_engine(
    extra_engine: ExtraEngine, tf_build: str, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    data = parity(extra_engine, tf_snapshot, tf_models / "dense.h5", tf_build, tmp_path / "parity.json")
    assert data["exit_code"] == 0, data["stderr"]
    assert data["verdict"] == "pass"


def test_parity_fails_on_the_engine_when_the_weights_differ(
    extra_engine: ExtraEngine, tf_build: str, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    swapped = tmp_path / "models" / "dense.h5"
    swapped.parent.mkdir()
    shutil.copy(tf_models / "dense_otherweights.h5", swapped)
    data = parity(extra_engine, tf_snapshot, swapped, tf_build, tmp_path / "parity.json")
    assert data["exit_code"] == 1, data["stderr"]
    assert data["model_mismatch"] is True


def test_parity_timeout_removes_the_container_on_the_engine(
    extra_engine: ExtraEngine, tf_build: str, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    model = tf_models / "cnn.keras"
    data = parity(extra_engine, tf_snapshot, model, tf_build, tmp_path / "parity.json", "--timeout", "1")
    assert data["exit_code"] == 2
    assert "within 1 s" in str(data["stderr"])
    assert extra_engine.engine.running_containers(OWN_CONTAINERS) == []


def test_ctrl_c_during_parity_removes_the_container_on_the_engine(
    extra_engine: ExtraEngine, tf_build: str, tf_snapshot: Path, tf_models: Path
) -> None:
    argv = [sys.executable, "-m", "envrepro", "parity", "--snapshot", str(tf_snapshot),
            "--model", str(tf_models / "cnn.keras"), "--image", tf_build]  # fmt: skip
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=extra_engine.process_env())
    engine = extra_engine.engine
    try:
        for _ in range(600):  # wait for the container to exist (not a time limit on the code under test)
            if engine.running_containers(OWN_CONTAINERS) or process.poll() is not None:
                break
            time.sleep(0.1)
        assert engine.running_containers(OWN_CONTAINERS), "the parity container never started"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate()
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert engine.running_containers(OWN_CONTAINERS) == []
    finally:
        process.kill()
