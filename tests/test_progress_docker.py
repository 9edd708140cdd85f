"""`envrepro build` piped into a reader, on the real engine: the progress lines arrive while the build runs.

A small snapshot (the `plain` environment, no TensorFlow) is built on the debootstrap base with --no-cache,
so its steps run for real; stderr is read line by line as it comes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BASE_IMAGE, _run_cli

from envrepro.engine import DockerEngine

pytestmark = [pytest.mark.integration, pytest.mark.docker]

TAG = "envrepro-test/progress-plain:piped"
STEP_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \+\d+\.\ds build step (\d+)/(\d+): ")


def own_bundle(tmp_path: Path) -> Path:
    """The host's CA bundle with a line of this test's, so that its --no-cache build's `COPY pip/` is not
    the same step as the cached builds'. Each --no-cache run added one more layer of identical content
    after the base (`docker history`: `COPY dir:48de05de...` under new IDs), and the legacy builder then
    took one of those as the parent of a cached build's next step: the other host's and the workflow
    replay's builds, with the host's bundle too, found no `COPY` of their lock after it and installed
    TensorFlow again, every run."""
    bundle = tmp_path / "ca.pem"
    system = Path("/etc/ssl/certs/ca-certificates.crt").read_text(encoding="utf-8")
    bundle.write_text(f"{system}\n# envrepro-test: the piped --no-cache build's own\n", encoding="utf-8")
    return bundle


def test_a_piped_build_writes_timestamped_step_lines_before_it_ends(
    docker_engine: DockerEngine, plain_python: Path, tmp_path: Path
) -> None:
    snap = tmp_path / "envrepro.lock.json"
    assert _run_cli(["snapshot", "--python", str(plain_python), "-o", str(snap)]).exit_code == 0
    argv = [sys.executable, "-m", "envrepro", "build", "--snapshot", str(snap), "--base-image", BASE_IMAGE,
            "--out", str(tmp_path / "build"), "--tag", TAG, "--no-cache",
            "--pip-cert", str(own_bundle(tmp_path))]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[str, bool]] = []  # each stderr line, and whether the build was still running then
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append((line.rstrip("\n"), process.poll() is None))
        stdout = process.stdout.read() if process.stdout else ""
        assert process.wait() == 0, "\n".join(text for text, _ in lines)
        steps = [(STEP_LINE.match(text), running) for text, running in lines if STEP_LINE.match(text)]
        assert steps, "\n".join(text for text, _ in lines)
        total = int(steps[0][0].group(2))  # type: ignore[union-attr]
        assert [int(m.group(1)) for m, _ in steps] == list(range(1, total + 1))  # type: ignore[union-attr]
        assert all(running for _, running in steps[:-1])  # read from the pipe while the build ran
        assert steps[0][1]
        stages = [text.split(" ", 3)[2].rstrip(":") for text, _ in lines if re.match(r"^\d{4}-", text)]
        first_stages = list(dict.fromkeys(stages))[:6]
        assert first_stages == ["snapshot", "resolve", "lock", "render", "context", "build"]
        tags = re.search(r"tagged (.*)$", stdout.strip())
        assert tags and TAG in tags.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        for tag in _built_tags(docker_engine):
            docker_engine.remove_image(tag)


def _built_tags(engine: DockerEngine) -> list[str]:
    if not engine.image_exists(TAG):
        return []
    return [TAG, *(t for t in engine.inspect_image(TAG).tags if t.startswith("envrepro:"))]
