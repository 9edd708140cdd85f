"""`envrepro doctor`: each check's ✔, ! and ✘ on the fake engine and a real local HTTP index; and once
against the real engine."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import BASE_IMAGE, CASES, _run_cli
from support.fake_engine import FakeEngine

from envrepro import doctor
from envrepro.doctor import Check, Diagnosis, DoctorRequest, check_disk, check_host, check_storage, diagnose
from envrepro.engine import DockerEngine
from envrepro.engine_api import EngineFacts, ImageInfo
from envrepro.errors import EngineUnavailableError

FACTS = FakeEngine().facts
SECRET = "tok-5ecr3t-doctor"


class Index(BaseHTTPRequestHandler):
    """A package index that serves /simple/pip/ and answers other paths per `status` (a real HTTP server)."""

    status = 200
    seen_auth: list[str] = []  # noqa: RUF012 - shared with the test on purpose

    def do_GET(self) -> None:
        Index.seen_auth.append(self.headers.get("Authorization", ""))
        code = Index.status if self.path == "/simple/pip/" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def index() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Index.status, Index.seen_auth = 200, []
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def pip_env(index_url: str, **extra: str) -> dict[str, str]:
    """The environment pip reads: no config files, only this index (and what `extra` adds)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": index_url, **extra}


def checks_by_name(diagnosis: Diagnosis) -> dict[str, Check]:
    return {check.name: check for check in diagnosis.checks}


def run_doctor(index: str, engine: FakeEngine | None = None, **request: object) -> Diagnosis:
    env = pip_env(f"http://{index}/simple")
    return diagnose(DoctorRequest(env=env, **request), lambda: engine or FakeEngine())  # type: ignore[arg-type]


# --- the whole diagnosis ------------------------------------------------------------------------------------


def test_a_healthy_setup_is_all_ticks_and_a_build_can_succeed(index: str) -> None:
    engine = FakeEngine(images={BASE_IMAGE: ImageInfo("sha256:b", 1, (BASE_IMAGE,), {}, ())})
    diagnosis = run_doctor(index, engine, base_image=BASE_IMAGE)
    assert [check.name for check in diagnosis.checks] == [
        "engine",
        "storage",
        "disk",
        "index",
        "base image",
        "host",
    ]
    assert diagnosis.ok
    lines = doctor.render_lines(diagnosis)
    assert lines[0] == "✔ engine: Docker 27.5.1 (API 1.47) at unix:///var/run/docker.sock"
    assert lines[-1] == "a build can succeed here"
    document = json.loads(doctor.render_json(diagnosis))
    assert document["ok"] is True and document["checks"][0]["status"] == "ok"


def test_no_engine_is_a_cross_with_what_to_do_and_the_engine_checks_are_skipped(index: str) -> None:
    def no_engine() -> FakeEngine:
        raise EngineUnavailableError("unix:///var/run/docker.sock", "No such file or directory")

    diagnosis = diagnose(DoctorRequest(env=pip_env(f"http://{index}/simple")), no_engine)
    checks = checks_by_name(diagnosis)
    assert checks["engine"].status == "fail" and "start the engine" in checks["engine"].action
    assert {checks[name].status for name in ("storage", "disk", "base image", "host")} == {"skip"}
    assert checks["index"].status == "ok"  # still checked: it does not need the engine
    assert not diagnosis.ok
    lines = doctor.render_lines(diagnosis)
    assert lines[0].startswith("✘ engine: no Docker engine reachable") and lines[1].startswith("  → start")
    assert "- storage: no engine to ask" in lines


def test_doctor_exits_2_when_a_build_cannot_succeed(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = cli("doctor", "--format", "json", "--snapshot", str(tmp_path / "none.json"))
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["checks"][0]["status"] == "fail"


# --- storage and disk ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "status"), [("overlay2", "ok"), ("vfs", "warn"), ("devicemapper", "warn")]
)
def test_storage_driver(driver: str, status: str) -> None:
    check = check_storage(replace(FACTS, storage_driver=driver))
    assert check.status == status and driver in check.detail
    assert bool(check.action) == (status != "ok")


def test_free_disk_where_a_local_engine_keeps_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = replace(FACTS, root_dir=str(tmp_path))
    free = shutil.disk_usage(tmp_path).free
    assert check_disk(facts).detail == f"{free / 1e9:.1f} GB free in {tmp_path}"
    monkeypatch.setattr(doctor, "MIN_FREE_BYTES", free + 10**12)
    assert check_disk(facts).status == "fail" and "envrepro clean" in check_disk(facts).action
    monkeypatch.setattr(doctor, "MIN_FREE_BYTES", 0)
    monkeypatch.setattr(doctor, "COMFORTABLE_FREE_BYTES", free + 10**12)
    assert check_disk(facts).status == "warn"
    monkeypatch.setattr(doctor, "COMFORTABLE_FREE_BYTES", 0)
    assert check_disk(facts).status == "ok"


def test_free_disk_of_a_remote_engine_or_a_path_not_on_this_host_is_unknown(tmp_path: Path) -> None:
    remote = check_disk(replace(FACTS, host="tcp://10.0.0.5:2376", root_dir=str(tmp_path)))
    missing = check_disk(replace(FACTS, root_dir=str(tmp_path / "not-here")))
    assert remote.status == missing.status == "warn"
    assert "unknown" in remote.detail and "unknown" in missing.detail


# --- the package index ---------------------------------------------------------------------------------


def test_the_index_answering_is_a_tick_with_the_url_and_the_ca_bundle(index: str) -> None:
    check = checks_by_name(run_doctor(index))["index"]
    assert check.status == "ok"
    assert check.detail.startswith(f"http://{index}/simple answered HTTP 200 in ")


@pytest.mark.parametrize(
    ("status", "action"), [(404, "network or proxy"), (401, "credentials"), (403, "credentials")]
)
def test_an_index_that_refuses_is_a_cross_with_what_to_do(index: str, status: int, action: str) -> None:
    Index.status = status
    diagnosis = run_doctor(index)
    check = checks_by_name(diagnosis)["index"]
    assert check.status == "fail" and f"HTTP {status}" in check.detail and action in check.action
    assert not diagnosis.ok


def test_an_index_nobody_listens_on_is_a_cross() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    check = checks_by_name(run_doctor(f"127.0.0.1:{port}"))["index"]
    assert check.status == "fail" and "ConnectionError" in check.detail


def test_index_credentials_are_sent_but_never_shown(index: str) -> None:
    env = pip_env(f"http://envrepro:{SECRET}@{index}/simple")
    diagnosis = diagnose(DoctorRequest(env=env), FakeEngine)
    assert checks_by_name(diagnosis)["index"].status == "ok"
    assert Index.seen_auth == ["Basic " + base64.b64encode(f"envrepro:{SECRET}".encode()).decode()]
    assert SECRET not in "\n".join(doctor.render_lines(diagnosis)) + doctor.render_json(diagnosis)
    assert f"http://***@{index}/simple" in checks_by_name(diagnosis)["index"].detail


def test_the_ca_bundle_pip_uses_is_shown_and_an_unreadable_one_is_a_cross(index: str, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("# not used for http\n", encoding="utf-8")
    env = pip_env(f"http://{index}/simple", PIP_CERT=str(bundle))
    assert (
        f"CA bundle {bundle}" in checks_by_name(diagnose(DoctorRequest(env=env), FakeEngine))["index"].detail
    )
    env = pip_env(f"http://{index}/simple", PIP_CERT=str(tmp_path / "missing.pem"))
    check = checks_by_name(diagnose(DoctorRequest(env=env), FakeEngine))["index"]
    assert check.status == "fail" and "missing.pem" in check.detail and "PIP_CERT" in check.action


# --- the base image and the host ------------------------------------------------------------------------


def test_a_base_image_the_engine_lacks_is_a_warning_with_what_to_do(index: str) -> None:
    check = checks_by_name(run_doctor(index, base_image="someone/python:3.11"))["base image"]
    assert check.status == "warn" and "docker pull someone/python:3.11" in check.action


def test_the_snapshots_resolved_base_is_checked_and_no_snapshot_is_skipped(
    index: str, tmp_path: Path
) -> None:
    snap = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
    check = checks_by_name(run_doctor(index, snapshot_path=snap))["base image"]
    assert check.status == "warn" and check.detail.startswith("python:3.11.7-slim-bookworm (resolved for ")
    skipped = checks_by_name(run_doctor(index, snapshot_path=tmp_path / "none.json"))["base image"]
    assert skipped.status == "skip"


def test_a_broken_snapshot_is_a_cross(index: str, tmp_path: Path) -> None:
    broken = tmp_path / "envrepro.lock.json"
    broken.write_text("{", encoding="utf-8")
    diagnosis = run_doctor(index, snapshot_path=broken)
    assert checks_by_name(diagnosis)["base image"].status == "fail" and not diagnosis.ok


@pytest.mark.parametrize(
    ("os_name", "arch", "host", "status", "where"),
    [
        ("linux", "x86_64", "unix:///var/run/docker.sock", "ok", "local socket"),
        ("linux", "x86_64", "tcp://127.0.0.1:2376", "ok", "remote, tcp://127.0.0.1:2376"),
        ("linux", "aarch64", "unix:///var/run/docker.sock", "ok", "local socket"),
        ("linux", "s390x", "unix:///var/run/docker.sock", "fail", "local socket"),
        ("windows", "x86_64", "npipe:////./pipe/docker_engine", "fail", "local socket"),
    ],
)
def test_host_and_engine_combination(os_name: str, arch: str, host: str, status: str, where: str) -> None:
    check = check_host(EngineFacts(host, "27.5.1", "1.47", os_name, arch, "Some OS", "overlay2", "/x"))
    assert check.status == status and f"engine {os_name} {arch}" in check.detail and where in check.detail


# --- the real engine --------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.docker
def test_doctor_on_the_real_engine_exits_0_and_shows_its_version(docker_engine: DockerEngine) -> None:
    result = _run_cli(["doctor", "--base-image", BASE_IMAGE])
    assert result.exit_code == 0, result.stdout + result.stderr
    version = docker_engine.api.version()
    assert f"✔ engine: Docker {version['Version']} (API {version['ApiVersion']})" in result.stdout
    assert f"✔ base image: {BASE_IMAGE}" in result.stdout
