"""How envrepro finds and reaches an engine (connect.py), without a daemon: the Docker CLI's order
(DOCKER_HOST, DOCKER_CONTEXT, currentContext, the local socket), its context store, TLS material, the
connect/answer timeout against a listener that never answers, and credentials that never reach a message."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from envrepro import connect
from envrepro.errors import EngineConfigError, EngineTimeoutError, EngineUnavailableError

PASSWORD = "s3cr3t-engine-pw-7d1e"


def write_context(
    config: Path, name: str, host: str, *, skip_verify: bool = False, tls: tuple[str, ...] = ()
) -> Path:
    """A context as `docker context create` stores it (the layout test_context_created_by_the_docker_cli
    checks against the real CLI)."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    endpoint = {"Host": host, "SkipTLSVerify": skip_verify}
    document = {"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}}
    (meta / "meta.json").write_text(json.dumps(document), encoding="utf-8")
    tls_dir = config / "contexts" / "tls" / digest / "docker"
    for file in tls:
        tls_dir.mkdir(parents=True, exist_ok=True)
        (tls_dir / file).write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    return tls_dir


# ---------------------------------------------------------------------------------------------------------
# Where the engine is


def test_docker_host_wins_over_every_context(tmp_path: Path) -> None:
    write_context(tmp_path, "remote", "tcp://10.0.0.9:2376")
    (tmp_path / "config.json").write_text('{"currentContext": "remote"}', encoding="utf-8")
    env = {"DOCKER_HOST": "tcp://127.0.0.1:2375", "DOCKER_CONTEXT": "remote", "DOCKER_CONFIG": str(tmp_path)}
    endpoint = connect.resolve(env)
    assert (endpoint.url, endpoint.origin, endpoint.tls) == ("tcp://127.0.0.1:2375", "DOCKER_HOST", None)


def test_current_context_of_the_cli_configuration_is_used_without_docker_host(tmp_path: Path) -> None:
    write_context(tmp_path, "build-host", "ssh://ci@build.example:2222")
    (tmp_path / "config.json").write_text('{"currentContext": "build-host"}', encoding="utf-8")
    endpoint = connect.resolve({"DOCKER_CONFIG": str(tmp_path)})
    assert endpoint.url == "ssh://ci@build.example:2222"
    assert endpoint.where == "ssh://***@build.example:2222 (docker context build-host)"


def test_docker_context_variable_overrides_the_configured_current_context(tmp_path: Path) -> None:
    write_context(tmp_path, "a", "tcp://10.0.0.1:2375")
    write_context(tmp_path, "b", "tcp://10.0.0.2:2375")
    (tmp_path / "config.json").write_text('{"currentContext": "a"}', encoding="utf-8")
    assert (
        connect.resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "b"}).url == "tcp://10.0.0.2:2375"
    )


def test_config_dir_defaults_to_dot_docker_in_home(tmp_path: Path) -> None:
    write_context(tmp_path / ".docker", "home", "tcp://10.0.0.3:2375")
    (tmp_path / ".docker" / "config.json").write_text('{"currentContext": "home"}', encoding="utf-8")
    assert connect.resolve({"HOME": str(tmp_path)}).url == "tcp://10.0.0.3:2375"


@pytest.mark.parametrize("config", [None, '{"currentContext": "default"}', '{"auths": {}}'])
def test_without_host_or_context_the_local_socket_is_used(tmp_path: Path, config: str | None) -> None:
    if config is not None:
        (tmp_path / "config.json").write_text(config, encoding="utf-8")
    endpoint = connect.resolve({"DOCKER_CONFIG": str(tmp_path)})
    assert (endpoint.url, endpoint.where) == (connect.DEFAULT_HOST, f"DOCKER_HOST={connect.DEFAULT_HOST}")


def test_context_tls_material_is_read_from_the_context_store(tmp_path: Path) -> None:
    tls_dir = write_context(tmp_path, "tls", "tcp://10.0.0.4:2376", tls=("ca.pem", "cert.pem", "key.pem"))
    tls = connect.resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "tls"}).tls
    assert tls == connect.TlsMaterial(tls_dir / "ca.pem", tls_dir / "cert.pem", tls_dir / "key.pem", True)


def test_context_that_skips_tls_verification_uses_tls_without_checking_the_server(tmp_path: Path) -> None:
    write_context(tmp_path, "insecure", "tcp://10.0.0.5:2376", skip_verify=True)
    tls = connect.resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "insecure"}).tls
    assert tls == connect.TlsMaterial(None, None, None, verify=False)


def test_context_on_plain_tcp_without_tls_material_stays_plain(tmp_path: Path) -> None:
    write_context(tmp_path, "plain", "tcp://10.0.0.6:2375")
    assert connect.resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "plain"}).tls is None


def test_tls_variables_follow_the_docker_cli(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x", encoding="utf-8")
    env = {"DOCKER_HOST": "tcp://10.0.0.7:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    assert connect.resolve(env).tls == connect.TlsMaterial(
        tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem", verify=True
    )
    env["DOCKER_TLS_VERIFY"] = ""  # empty counts as unset: TLS (cert path given) without verification
    assert connect.resolve(env).tls.verify is False  # type: ignore[union-attr]
    assert connect.resolve({"DOCKER_HOST": "tcp://10.0.0.7:2375"}).tls is None


def test_a_missing_context_is_one_error_naming_it(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("DOCKER_CONTEXT", "gone")
    result = cli("diff", "image:envrepro-test/none:1", "image:envrepro-test/none:1")
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: DOCKER_CONTEXT='gone' cannot be used: no such context in {tmp_path / 'contexts'}"
    ]
    assert "Traceback" not in result.stderr


def test_a_context_without_a_docker_endpoint_is_a_config_error(tmp_path: Path) -> None:
    write_context(tmp_path, "empty", "")
    with pytest.raises(EngineConfigError, match="names no docker endpoint Host"):
        connect.resolve({"DOCKER_CONFIG": str(tmp_path), "DOCKER_CONTEXT": "empty"})


def test_an_unreadable_cli_configuration_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(EngineConfigError, match="not a readable JSON file"):
        connect.resolve({"DOCKER_CONFIG": str(tmp_path)})


@pytest.mark.integration
def test_context_created_by_the_docker_cli_is_found(tmp_path: Path) -> None:
    """The layout connect.py reads is the one the real Docker CLI writes."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is not installed (DESIGN.md: the machines have it)")
    env = {"DOCKER_CONFIG": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    for argv in (["context", "create", "ci-host", "--docker", "host=tcp://10.1.2.3:2376,skip-tls-verify=true"],
                 ["context", "use", "ci-host"]):  # fmt: skip
        subprocess.run(["docker", *argv], env=env, check=True, capture_output=True)
    endpoint = connect.resolve({"DOCKER_CONFIG": str(tmp_path)})
    assert (endpoint.url, endpoint.origin) == ("tcp://10.1.2.3:2376", "docker context ci-host")
    assert endpoint.tls == connect.TlsMaterial(None, None, None, verify=False)


# ---------------------------------------------------------------------------------------------------------
# The timeout


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_an_invalid_engine_timeout_is_exit_2_naming_the_variable(cli, value: str, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    monkeypatch.setenv(connect.TIMEOUT_VARIABLE, value)
    result = cli("diff", "image:envrepro-test/none:1", "image:envrepro-test/none:1")
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: ENVREPRO_ENGINE_TIMEOUT='{value}' cannot be used: not a number of seconds greater than 0"
    ]


def test_engine_timeout_default_and_override() -> None:
    assert connect.engine_timeout({}) == connect.DEFAULT_TIMEOUT_S == 10.0
    assert connect.engine_timeout({connect.TIMEOUT_VARIABLE: "2.5"}) == 2.5


@contextmanager
def silent_engine(lifetime_s: float = 60.0) -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts every connection and never answers. It stops by itself
    after `lifetime_s` (so that a client without a timeout, like main's, ends too) or when the test ends."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        held: list[socket.socket] = []
        deadline = time.monotonic() + lifetime_s
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
        for connection in held:
            connection.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()


def test_an_engine_that_never_answers_is_exit_2_naming_the_timeout(cli, monkeypatch) -> None:
    with silent_engine() as port:
        monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
        monkeypatch.setenv(connect.TIMEOUT_VARIABLE, "1")
        result = cli("diff", "image:envrepro-test/none:1", "image:envrepro-test/none:1")
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: no Docker engine reachable at DOCKER_HOST=tcp://127.0.0.1:{port}: no answer within 1 s "
        "(the engine connect/answer timeout)"
    ]
    assert "ENVREPRO_ENGINE_TIMEOUT=SECONDS" in result.stderr


def test_an_ssh_server_that_never_answers_is_exit_2_naming_the_ssh_limits(cli, monkeypatch) -> None:
    with silent_engine() as port:
        monkeypatch.setenv("DOCKER_HOST", f"ssh://ci@127.0.0.1:{port}")
        result = cli("diff", "image:envrepro-test/none:1", "image:envrepro-test/none:1")
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: no Docker engine reachable at DOCKER_HOST=ssh://***@127.0.0.1:{port}: Error reading SSH "
        f"protocol banner ({connect.SSH_LIMITS})"
    ]
    assert "Traceback" not in result.stderr


def test_the_timeout_error_is_an_engine_unavailable_error() -> None:
    with silent_engine() as port, pytest.raises(EngineUnavailableError) as caught:
        connect.connect({"DOCKER_HOST": f"tcp://127.0.0.1:{port}", connect.TIMEOUT_VARIABLE: "0.5"})
    assert isinstance(caught.value, EngineTimeoutError)
    assert caught.value.timeout_s == 0.5


# ---------------------------------------------------------------------------------------------------------
# Credentials


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])  # closed again when this returns: nothing listens there


@pytest.mark.parametrize("scheme", ["tcp", "https"])
def test_password_in_docker_host_never_reaches_stdout_stderr_or_the_log(
    cli, scheme: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = closed_port()
    monkeypatch.setenv("DOCKER_HOST", f"{scheme}://envrepro:{PASSWORD}@127.0.0.1:{port}")
    result = cli("diff", "image:envrepro-test/none:1", "image:envrepro-test/none:1")
    assert result.exit_code == 2
    assert PASSWORD not in result.stdout + result.stderr + caplog.text
    assert result.error_lines[0].startswith(
        f"error: no Docker engine reachable at DOCKER_HOST={scheme}://***@127.0.0.1:{port}: "
    )


def test_password_in_an_ssh_address_is_refused_without_showing_it(cli, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"ssh://ci:{PASSWORD}@127.0.0.1:22")
    result = cli("diff", "image:envrepro-test/none:1", "image:envrepro-test/none:1")
    assert result.exit_code == 2
    assert PASSWORD not in result.stdout + result.stderr
    assert "a password in a ssh:// address is not supported" in result.error_lines[0]


@contextmanager
def recording_endpoint(lifetime_s: float = 60.0) -> Iterator[tuple[int, list[str]]]:
    """An HTTP listener on 127.0.0.1 that answers /version like an engine and records the Authorization
    header of every request; it stops by itself after `lifetime_s` or when the test ends."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = b'{"ApiVersion": "1.41"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 0.2
    stop = threading.Event()

    def serve() -> None:
        deadline = time.monotonic() + lifetime_s
        while not stop.is_set() and time.monotonic() < deadline:
            server.handle_request()
        server.server_close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        stop.set()
        thread.join()


def test_credentials_in_docker_host_are_sent_as_basic_auth_and_not_kept_in_the_address() -> None:
    with recording_endpoint() as (port, seen):
        endpoint, client = connect.connect({"DOCKER_HOST": f"tcp://envrepro:{PASSWORD}@127.0.0.1:{port}"})
        client.api.version()
    token = base64.b64encode(f"envrepro:{PASSWORD}".encode()).decode()
    assert seen and set(seen) == {f"Basic {token}"}
    assert client.api.base_url == f"http://127.0.0.1:{port}"
    assert PASSWORD not in repr(endpoint) + endpoint.where
