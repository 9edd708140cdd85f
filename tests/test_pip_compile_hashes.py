"""envrepro/pipcompile/run.py, the pip-compile both lock paths run, against a real index served here.

The index (PEP 503 pages, no PyPI JSON API: like devpi, Artifactory or a mirror) lists three files of
demo-pkg 1.0: the wheel pip resolves with, a Windows wheel that is listed with its sha256 but not served,
and an sdist whose listed hash is not a sha256. pip-tools alone downloads every file to hash it, so the
missing Windows wheel fails its lock; run.py takes the published hash, and downloads and hashes only the
file whose published value is not one.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from wheels import make_wheel

from envrepro import pipcompile
from envrepro.lock import COMPILE_FLAGS

pytestmark = pytest.mark.integration  # the real pip and pip-tools, a real (local) HTTP index

MISSING = "demo_pkg-1.0-cp311-cp311-win_amd64.whl"
MISSING_SHA256 = "ab" * 32
SDIST = "demo_pkg-1.0.tar.gz"
SDIST_BYTES = b"not really an sdist: only hashed, never built"


class Index:
    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        self.requested: list[str] = []

    def files(self) -> dict[str, bytes]:
        return {self.wheel.name: self.wheel.read_bytes(), SDIST: SDIST_BYTES}

    def page(self) -> bytes:
        wheel_sha = hashlib.sha256(self.wheel.read_bytes()).hexdigest()
        links = [
            (self.wheel.name, f"sha256={wheel_sha}"),
            (MISSING, f"sha256={MISSING_SHA256}"),
            (SDIST, "sha256=not-a-sha256"),
        ]
        body = "".join(f'<a href="/files/{name}#{fragment}">{name}</a>\n' for name, fragment in links)
        return f"<!DOCTYPE html><html><body>\n{body}</body></html>\n".encode()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[str, Index]]:
    served = Index(make_wheel(tmp_path, "demo-pkg", {"demo_pkg.py": "VALUE = 1\n"}))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requested.append(self.path)
            name = self.path.rsplit("/", 1)[-1]
            files = served.files()
            if self.path.rstrip("/") == "/simple/demo-pkg":
                self._send(served.page(), "text/html")
            elif self.path.startswith("/files/") and name in files:
                self._send(files[name], "application/octet-stream")
            else:
                self.send_error(404)

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple", served
    finally:
        server.shutdown()
        server.server_close()


def test_published_hashes_are_taken_and_only_a_file_without_a_valid_one_is_downloaded(
    index: tuple[str, Index], tmp_path: Path
) -> None:
    url, served = index
    (tmp_path / "requirements.in").write_text("demo-pkg==1.0\n", encoding="utf-8")
    (tmp_path / "pip.conf").write_text(f"[global]\nindex-url = {url}\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": str(tmp_path / "pip.conf")}
    argv = [sys.executable, str(pipcompile.SCRIPT), "compile", *COMPILE_FLAGS]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--output-file", "out.txt", "requirements.in"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    hashes = {
        served.wheel.name: hashlib.sha256(served.wheel.read_bytes()).hexdigest(),
        MISSING: MISSING_SHA256,  # as published: never downloaded (the index does not even serve it)
        SDIST: hashlib.sha256(SDIST_BYTES).hexdigest(),  # its published value is no sha256: hashed here
    }
    lock = (tmp_path / "out.txt").read_text(encoding="utf-8")
    assert (
        lock
        == "demo-pkg==1.0 \\\n"
        + " \\\n".join(f"    --hash=sha256:{h}" for h in sorted(hashes.values()))
        + "\n"
    )
    assert f"/files/{MISSING}" not in served.requested
    assert f"/files/{SDIST}" in served.requested


def test_an_index_value_that_is_not_a_sha256_is_never_taken() -> None:
    sys.path.insert(0, str(pipcompile.SCRIPT.parent))
    try:
        import run  # envrepro/pipcompile/run.py, as the script imports nothing of envrepro
    finally:
        sys.path.remove(str(pipcompile.SCRIPT.parent))

    class Link:
        def __init__(self, hashes: dict[str, str]) -> None:
            self._hashes = hashes

    assert run.published_sha256(Link({"sha256": "0f" * 32})) == "0f" * 32
    for bad in ("0F" * 32, "0f" * 31, "0f" * 32 + "\n--index-url http://evil", ""):
        assert run.published_sha256(Link({"sha256": bad})) is None
    assert run.published_sha256(Link({"md5": "0f" * 16})) is None
    assert run.published_sha256(object()) is None
