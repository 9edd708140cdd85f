"""The extra engines the remote-engine tests run against, each started by a script of .ci/run:

- "dind": a second Docker engine in a container of this machine's engine (.ci/dind.sh), reached at
  127.0.0.1 over TCP with TLS only; none of this machine's paths exist there.
- "podman": Podman's Docker-compatible API on a unix socket (.ci/podman.sh), rootful.

Each script writes an `env` file (DOCKER_HOST, ...) into its directory; a fixture reads it, reaches the
engine through envrepro's own connect.py and skips loudly when it is not there (fails when
ENVREPRO_REQUIRE_DOCKER=1, as in CI).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from owned import OwnImages

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
    own: OwnImages = field(init=False)  # the images this session built there

    def __post_init__(self) -> None:
        object.__setattr__(self, "own", OwnImages(self.engine))

    def process_env(self, **extra: str) -> dict[str, str]:
        """os.environ with this engine's DOCKER_* variables instead of the machine's, plus `extra`."""
        base = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
        return {**base, **self.env, **extra}

    def cli(self, argv: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
        """`envrepro ARGS` as a separate process pointed at this engine; a build's image is recorded as
        this session's (removed at its end)."""
        done = subprocess.run(
            [sys.executable, "-m", "envrepro", *argv],
            capture_output=True,
            text=True,
            check=False,
            env=self.process_env(**extra),
        )
        if argv[:1] == ["build"] and "--tag" in argv and done.returncode == 0:
            self.own.built(argv[argv.index("--tag") + 1])
        return done


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
    """Each extra engine in turn (dind over TLS, podman), shared with other runs like the machine's own:
    afterwards the tags this session put on its images there go; the fixed cache tags stay, so that the
    next run builds from that engine's cache."""
    engine = reach(str(request.param))
    try:
        yield engine
    finally:
        engine.own.remove()


@pytest.fixture(scope="session")
def dind_engine() -> ExtraEngine:
    """The docker-in-docker engine alone (the TLS and docker-context tests)."""
    return reach("dind")


# ---------------------------------------------------------------------------------------------------------
# An ssh:// endpoint: Debian's sshd on 127.0.0.1, in front of this machine's engine


@dataclass(frozen=True)
class SshEndpoint:
    host: str  # ssh://root@127.0.0.1:PORT
    home: Path  # a HOME whose ~/.ssh holds the client key and the server's host key (known_hosts)


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def _ssh_files(folder: Path, port: int) -> Path:
    """Host key, client key, authorized_keys, known_hosts and sshd_config; returns the sshd_config."""
    home_ssh = folder / "home" / ".ssh"
    home_ssh.mkdir(parents=True, mode=0o700)
    for key in (folder / "host_key", home_ssh / "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (folder / "authorized_keys").write_text((home_ssh / "id_ed25519.pub").read_text())
    host_key = (folder / "host_key.pub").read_text().split()
    (home_ssh / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "StrictModes no\nUsePAM no\n"
    )
    return config


@pytest.fixture(scope="session")
def ssh_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshEndpoint]:
    """sshd on 127.0.0.1 (key login as root), whose `docker system dial-stdio` reaches this machine's
    engine. It runs under `timeout` so that it stops by itself even if the session is killed."""
    if not Path("/usr/sbin/sshd").is_file() or os.geteuid() != 0:
        require("an ssh server", "install Debian's openssh-server (.ci/run does); runs as root")
    folder = tmp_path_factory.mktemp("sshd")
    port = _free_port()
    config = _ssh_files(folder, port)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    server = subprocess.Popen(["timeout", "1800", "/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                              stderr=(folder / "sshd.log").open("w"))  # fmt: skip
    try:
        _wait_listening(port, server)
        yield SshEndpoint(f"ssh://root@127.0.0.1:{port}", folder / "home")
    finally:
        server.terminate()
        server.wait()


def _wait_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if server.poll() is not None:
            pytest.fail(f"sshd exited with {server.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    pytest.fail("sshd did not listen")
