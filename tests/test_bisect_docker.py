"""`envrepro bisect` against the real engine and real TensorFlow: the image of the TF 2.21 snapshot, run
with what differs from training, and bisect naming the difference by measuring its variants."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import CPU_TAG, CliResult, _run_cli
from test_build_docker import freeze
from test_parity_docker import onednn_off_image  # noqa: F401 - the session fixture, reused

from envrepro.bisect_report import BisectReport
from envrepro.engine import DockerEngine
from envrepro.runner import Limits, run_command
from envrepro.variant_build import BUILDER_LABEL, FILES_LABEL

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def run_bisect(
    snap: Path, model: Path, image: str, out: Path, *extra: str, logged: bool = False
) -> tuple[CliResult, dict[str, object]]:
    """`envrepro bisect`; `logged`: with its info log as JSON lines on stderr (`files_tags_used`)."""
    out.mkdir(parents=True, exist_ok=True)
    result = _run_cli([
        *(("-v", "--log-format", "json") if logged else ()),
        "bisect", "--snapshot", str(snap), "--model", str(model), "--image", image,
        "--report", str(out / "bisect.json"), "--markdown", str(out / "bisect.md"), *extra,
    ])  # fmt: skip
    written = out / "bisect.json"
    data = json.loads(written.read_text(encoding="utf-8")) if written.exists() else {}
    if data:
        jsonschema.validate(data, BisectReport.model_json_schema())
    return result, data


def test_parity_that_passes_exits_0_and_builds_nothing(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    result, data = run_bisect(tf_snapshot, tf_models / "cnn.keras", CPU_TAG, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert data["verdict"] == "pass"
    assert data["builds"] == 0
    assert data["trials"] == []
    assert "nothing to bisect" in result.stdout


def test_flipped_onednn_is_named_by_bisect_without_building_anything(
    onednn_off_image: str,  # noqa: F811 - the imported fixture
    tf_snapshot: Path,
    tf_models: Path,
    tmp_path: Path,
) -> None:
    result, data = run_bisect(tf_snapshot, tf_models / "cnn.keras", onednn_off_image, tmp_path,
                              "--atol", "0", "--rtol", "0")  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert data["verdict"] == "cause", data
    assert data["cause"] == ["TF_ENABLE_ONEDNN_OPTS"]
    assert data["builds"] == 0
    assert all(not trial["built"] for trial in data["trials"])  # type: ignore[attr-defined]
    cause = next(t for t in data["trials"] if t["groups"] == ["TF_ENABLE_ONEDNN_OPTS"])  # type: ignore[attr-defined]
    assert cause["outcome"] == "pass"
    assert cause["max_abs_error"] == 0
    assert data["baseline_max_abs_error"] > 0  # type: ignore[operator]
    assert "Returning TF_ENABLE_ONEDNN_OPTS 0 → (absent) restores parity" in data["summary"]  # type: ignore[operator]
    assert "TF_ENABLE_ONEDNN_OPTS" in (tmp_path / "bisect.md").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tf215_snapshot(tf215_python: Path, tf215_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training record of a model saved in TF 2.15.1 / Keras 2, with its reference outputs.

    The hard_sigmoid CNN: its outputs in TF 2.21 differ by ~1e-2 on any CPU (Keras 3's hard_sigmoid has
    another slope). cnn.keras's differ by ~1e-7 here, but whether they differ at all depends on the CPU's
    kernels; the dense model's are bit-identical."""
    out = tmp_path_factory.mktemp("tf215-snapshot") / "envrepro.lock.json"
    argv = ["snapshot", "--python", str(tf215_python), "-o", str(out), "--samples", "32"]
    result = _run_cli([*argv, "--model", str(tf215_models / "cnn_hard_sigmoid.keras")])
    assert result.exit_code == 0, result.stderr
    return out


@pytest.mark.bisect_builds
def test_a_tf215_model_in_the_tf221_image_is_explained_by_the_tensorflow_group(
    cpu_build: object, docker_engine: DockerEngine, tf215_snapshot: Path, tf215_models: Path, tmp_path: Path
) -> None:
    result, data = run_bisect(tf215_snapshot, tf215_models / "cnn_hard_sigmoid.keras", CPU_TAG, tmp_path,
                              "--atol", "0", "--rtol", "0", logged=True)  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert data["verdict"] == "cause", data
    cause = data["cause"]
    assert isinstance(cause, list) and len(cause) == 1
    assert cause[0].split("+")[0] == "tensorflow"  # numpy may have to move with it (TF 2.15 needs numpy < 2)
    trial = next(t for t in data["trials"] if t["groups"] == cause)  # type: ignore[attr-defined]
    assert trial["outcome"] == "pass" and trial["max_abs_error"] == 0
    assert "tensorflow-cpu 2.21.0 → 2.15.1" in data["summary"]  # type: ignore[operator]
    assert data["baseline_max_abs_error"] > 1e-3  # type: ignore[operator]
    assert data["builds"] == 1  # the TensorFlow group, the prime suspect, tried first and alone
    assert data["trials"][0]["groups"] == cause  # type: ignore[index]
    assert data["removed_images"]  # what this run built is gone again
    assert not any(docker_engine.image_exists(tag) for tag in data["removed_images"])  # type: ignore[attr-defined]
    used = files_tags_used(result.stderr)
    assert used  # the variants' files images, built or found
    for tag in used:  # this run's builder stages went right after their build (another run's are not ours)
        assert docker_engine.list_images(f"{BUILDER_LABEL}={tag}") == []


def files_tags_used(stderr: str) -> list[str]:
    """The files images a bisect run built or reused, from its JSON log lines."""
    messages = [json.loads(line)["message"] for line in stderr.splitlines() if line.startswith("{")]
    found = (re.match(r"(?:building )?variant files (\S+?):? ", message + " ") for message in messages)
    return sorted({match.group(1) for match in found if match})


@pytest.fixture(scope="session")
def tf215_onednn_off_snapshot(
    tf215_python: Path, tf215_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A TF 2.15.1 model recorded with oneDNN off: the image (TF 2.21, oneDNN on) differs in both.

    Its hard_sigmoid makes the TensorFlow group matter on any CPU (Keras 3 changed the function's slope).
    With cnn.keras that rested on TF 2.15's and TF 2.21's Eigen kernels differing in the last bit with
    oneDNN off: true on this machine (1.5e-8), false on the CPU of one CI run, where bisect then rightly
    named the variable alone."""
    out = tmp_path_factory.mktemp("tf215-onednn-off") / "envrepro.lock.json"
    argv = ["snapshot", "--python", str(tf215_python), "-o", str(out), "--samples", "32"]
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}  # as training ran
    model = str(tf215_models / "cnn_hard_sigmoid.keras")
    command = [sys.executable, "-m", "envrepro", *argv, "--model", model]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["environment"]["env"]["TF_ENABLE_ONEDNN_OPTS"] == "0"
    return out


@pytest.mark.bisect_builds
def test_a_variable_and_the_tensorflow_group_at_once_are_both_in_the_minimal_cause(
    cpu_build: object,
    docker_engine: DockerEngine,
    tf215_onednn_off_snapshot: Path,
    tf215_models: Path,
    tmp_path: Path,
) -> None:
    model = tf215_models / "cnn_hard_sigmoid.keras"
    result, data = run_bisect(tf215_onednn_off_snapshot, model, CPU_TAG, tmp_path,
                              "--atol", "0", "--rtol", "0", "--max-builds", "16", "--keep")  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert data["verdict"] == "cause", data
    cause = data["cause"]
    assert isinstance(cause, list) and len(cause) == 2
    assert "TF_ENABLE_ONEDNN_OPTS" in cause
    assert any(key.split("+")[0] == "tensorflow" for key in cause)
    trial = next(t for t in data["trials"] if sorted(t["groups"]) == sorted(cause))  # type: ignore[attr-defined]
    assert trial["max_abs_error"] == 0
    alone = next(t for t in data["trials"] if t["groups"] == ["TF_ENABLE_ONEDNN_OPTS"])  # type: ignore[attr-defined]
    assert alone["max_abs_error"] > 1e-3  # TF 2.21's Keras 3 hard_sigmoid, not a last-bit difference
    built = [t["image"] for t in data["trials"] if t["built"]]  # type: ignore[attr-defined]
    assert len(built) == data["builds"] == 1  # the TensorFlow group's variant, with and without the variable
    try:  # kept (--keep): each differs from the image by its changed distributions only, two layers
        image = docker_engine.inspect_image(CPU_TAG)
        for tag in built:
            variant = docker_engine.inspect_image(tag)
            files = docker_engine.inspect_image(variant.labels[FILES_LABEL])  # FROM scratch: the changes
            assert variant.size_bytes - image.size_bytes <= files.size_bytes + 1_000_000, tag
            assert variant.history[len(variant.history) - len(image.history) :] == image.history
            added = [step for step in variant.history[: len(variant.history) - len(image.history)]
                     if "#(nop)" not in step or "COPY" in step]  # fmt: skip
            assert len(added) <= 2 and all("pip install" not in step for step in added), added
            check = run_command(docker_engine, tag, ["python", "-m", "pip", "check"], Limits(timeout_s=120),
                                environment={"HOME": "/tmp"})  # fmt: skip
            assert check.exit_code == 0, check.logs  # what the variant uninstalled left nothing half-there
        assert freeze(docker_engine, trial["image"])["tensorflow-cpu"] == "2.15.1"  # the cause's variant
        listed_apart_from_the_builds(docker_engine, built, image.image_id)
    finally:
        for tag in built:
            docker_engine.remove_image(tag)


def listed_apart_from_the_builds(engine: DockerEngine, variants: list[str], image_id: str) -> None:
    """`envrepro images` shows the kept variants and their files images as bisect's, not as newer builds of
    the image's snapshot file, and `envrepro clean --all --dry-run` would remove them (read-only here: the
    engine is shared)."""
    files = {engine.inspect_image(tag).labels[FILES_LABEL] for tag in variants} - {""}
    listing = _run_cli(["images", "--format", "json"])
    assert listing.exit_code == 0, listing.stderr
    document = json.loads(listing.stdout)
    bisect = {tag: entry for entry in document["bisect"] for tag in entry["tags"]}
    for tag in variants:
        assert bisect[tag]["kind"] == "variant" and bisect[tag]["variant_of"] == image_id, bisect.get(tag)
    for tag in files:
        assert bisect[tag]["kind"] == "files", bisect.get(tag)
    builds = {tag for entry in document["images"] for tag in entry["tags"]}
    assert builds.isdisjoint([*variants, *files])
    assert next(e for e in document["images"] if e["id"] == image_id)["replaced_by"] is None
    dry = _run_cli(["clean", "--all", "--dry-run"])
    assert dry.exit_code == 0, dry.stderr
    for tag in variants:
        assert f"would remove bisect variant {tag} (" in dry.stdout
    for tag in files:
        assert f"would remove bisect files {tag} (" in dry.stdout
