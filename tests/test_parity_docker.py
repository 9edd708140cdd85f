"""`envrepro parity` against the real engine: real models, recorded in a real TF 2.21 environment, run in
the image `envrepro build` made of that environment (see test_build_docker.py for the build fixtures)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from conftest import CPU_TAG, OWN_CONTAINERS, CliResult, _run_cli, build_args, own_tag, reused_lock

from envrepro.engine import DockerEngine
from envrepro.parity_model import ParityReport

pytestmark = [pytest.mark.integration, pytest.mark.docker]

ONEDNN_OFF_TAG = own_tag("envrepro-test/tf221", "onednn-off")  # this session's; removed at its end
JUNIT_XSD = Path(__file__).parent / "schemas" / "junit.xsd"


def parity(snap: Path, model: Path, reports: Path, *extra: str) -> tuple[CliResult, dict[str, object]]:
    reports.mkdir(parents=True, exist_ok=True)
    result = _run_cli([
        "parity", "--snapshot", str(snap), "--model", str(model), "--image", CPU_TAG,
        "--report", str(reports / "parity.json"), "--markdown", str(reports / "parity.md"),
        "--junit", str(reports / "parity.xml"), *extra,
    ])  # fmt: skip
    written = reports / "parity.json"
    data = json.loads(written.read_text(encoding="utf-8")) if written.exists() else {}
    return result, data


def check_reports(reports: Path) -> None:
    """The JSON validates against its documented schema, the JUnit XML against the JUnit schema."""
    data = json.loads((reports / "parity.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, ParityReport.model_json_schema())
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(reports / "parity.xml"))


@pytest.mark.parametrize("model", ["dense.h5", "dense.keras", "dense_savedmodel"])
def test_same_environment_passes_in_every_model_format_and_every_report_says_so(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, model: str, tmp_path: Path
) -> None:
    result, data = parity(tf_snapshot, tf_models / model, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "PASS" in result.stdout
    check_reports(tmp_path)
    assert data["verdict"] == "pass"
    assert data["model_mismatch"] is False
    for output in data["outputs"]:  # type: ignore[attr-defined]
        assert output["max_abs_error"] <= 1e-6
    assert "PASS" in (tmp_path / "parity.md").read_text()
    junit = (tmp_path / "parity.xml").read_text()
    assert 'failures="0"' in junit


def test_custom_layers_load_from_a_mounted_file(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    custom = tf_models / "custom_layers.py"
    result, data = parity(tf_snapshot, tf_models / "custom.h5", tmp_path, "--custom-objects", str(custom))
    assert result.exit_code == 0, result.stderr
    assert data["verdict"] == "pass"


def test_model_with_custom_layers_but_no_custom_objects_fails_to_load_with_the_loaders_message(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    result, _ = parity(tf_snapshot, tf_models / "custom.h5", tmp_path)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "Scale" in errors[0]
    assert "--custom-objects" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="session")
def onednn_off_image(cpu_build: object, tf_snapshot: Path, planted_cert: Path, docker_engine: DockerEngine,
                     tmp_path_factory: pytest.TempPathFactory) -> str:  # fmt: skip
    """An image built from the snapshot edited to set TF_ENABLE_ONEDNN_OPTS=0 (the venv layer is cached)."""
    raw = json.loads(tf_snapshot.read_text(encoding="utf-8"))
    raw["environment"]["env"]["TF_ENABLE_ONEDNN_OPTS"] = "0"
    folder = tmp_path_factory.mktemp("onednn-off")
    edited = folder / "envrepro.lock.json"
    edited.write_text(json.dumps(raw), encoding="utf-8")
    with reused_lock(folder / "build", "tf221-onednn-off"):
        result = _run_cli(
            build_args(edited, folder / "build", planted_cert, "--tag", ONEDNN_OFF_TAG, "--target", "cpu")
        )
    assert result.exit_code == 0, result.stderr
    yield ONEDNN_OFF_TAG
    docker_engine.remove_image(ONEDNN_OFF_TAG)


def test_flipped_onednn_is_measured_and_named_as_the_cause(
    onednn_off_image: str, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    # Exact tolerance, so that the measured difference (~6e-8 on this CPU) fails and must be explained.
    result, data = parity(tf_snapshot, tf_models / "cnn.keras", tmp_path, "--image", onednn_off_image,
                          "--atol", "0", "--rtol", "0")  # fmt: skip
    assert result.exit_code == 1, result.stderr
    check_reports(tmp_path)
    outputs = data["outputs"]
    assert isinstance(outputs, list)
    assert 0 < outputs[0]["max_abs_error"] < 1e-4
    assert data["model_mismatch"] is False
    causes = data["likely_causes"]
    assert isinstance(causes, list)
    assert "oneDNN" in causes[0]["cause"]
    assert "TF_ENABLE_ONEDNN_OPTS" in causes[0]["evidence"]
    assert "oneDNN" in (tmp_path / "parity.md").read_text()
    assert "oneDNN" in result.stdout


def test_flipped_onednn_within_default_tolerance_passes_but_still_shows_the_difference(
    onednn_off_image: str, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    result, data = parity(tf_snapshot, tf_models / "cnn.keras", tmp_path, "--image", onednn_off_image)
    assert result.exit_code == 0, result.stderr
    differences = data["differences"]
    assert isinstance(differences, list)
    assert any(d["field"].endswith("TF_ENABLE_ONEDNN_OPTS") for d in differences)


def test_different_weights_with_the_same_architecture_is_a_model_mismatch(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    swapped = tmp_path / "models" / "dense.h5"
    swapped.parent.mkdir()
    shutil.copy(tf_models / "dense_otherweights.h5", swapped)
    result, data = parity(tf_snapshot, swapped, tmp_path / "reports")
    assert result.exit_code == 1
    assert data["model_mismatch"] is True
    fingerprints = {f["what"]: f["same"] for f in data["fingerprints"]}  # type: ignore[attr-defined]
    assert fingerprints == {"file": False, "architecture": True, "weights": False}
    causes = data["likely_causes"]
    assert isinstance(causes, list)
    assert "weights" in causes[0]["cause"]
    assert "model mismatch" in result.stdout.lower()


def one_error(result: CliResult) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return errors[0]


def test_missing_model_is_exit_2(tf_snapshot: Path, tmp_path: Path) -> None:
    result, _ = parity(tf_snapshot, tmp_path / "nope.h5", tmp_path)
    assert result.exit_code == 2
    assert "no such model" in one_error(result)


def test_model_without_a_reference_says_how_to_record_one(
    tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    result, _ = parity(tf_snapshot, tf_models / "dense_otherweights.h5", tmp_path)
    assert result.exit_code == 2
    assert "no reference outputs" in one_error(result)
    assert "envrepro snapshot" in result.stderr


def test_truncated_model_file_is_reported_as_corrupt(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    truncated = tmp_path / "models" / "dense.h5"
    truncated.parent.mkdir()
    data = (tf_models / "dense.h5").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    result, _ = parity(tf_snapshot, truncated, tmp_path / "reports")
    assert result.exit_code == 2
    line = one_error(result)
    assert "dense.h5" in line
    assert "truncated or corrupt" in result.stderr


def test_image_not_found_is_exit_2(
    tf_snapshot: Path, tf_models: Path, tmp_path: Path, docker_engine: object
) -> None:
    result, _ = parity(tf_snapshot, tf_models / "dense.h5", tmp_path, "--image", "envrepro-test/none:missing")
    assert result.exit_code == 2
    assert "envrepro-test/none:missing not found" in one_error(result)


def test_model_needing_unsafe_loading_is_refused_in_the_image_unless_allowed(
    cpu_build: object, tf_python: Path, tf_models: Path, tmp_path: Path
) -> None:
    snap = tmp_path / "lambda" / "envrepro.lock.json"
    snap.parent.mkdir()
    model = tf_models / "lambda.keras"
    recorded = _run_cli(["snapshot", "--python", str(tf_python), "--model", str(model), "-o", str(snap),
                         "--unsafe-deserialization", "--samples", "4"])  # fmt: skip
    assert recorded.exit_code == 0, recorded.stderr
    refused, _ = parity(snap, model, tmp_path / "refused")
    assert refused.exit_code == 2
    assert "--unsafe-deserialization" in one_error(refused)  # the flag that allows it, by name
    allowed, data = parity(snap, model, tmp_path / "allowed", "--unsafe-deserialization")
    assert allowed.exit_code == 0, allowed.stderr
    assert data["verdict"] == "pass"


def test_timeout_stops_and_removes_the_container(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, tmp_path: Path, docker_engine: DockerEngine
) -> None:
    result, _ = parity(tf_snapshot, tf_models / "cnn.keras", tmp_path, "--timeout", "1")
    assert result.exit_code == 2
    assert "within 1 s" in one_error(result)
    assert docker_engine.running_containers(OWN_CONTAINERS) == []


def test_ctrl_c_during_parity_removes_the_container(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, docker_engine: DockerEngine
) -> None:
    argv = [
        "parity",
        "--snapshot",
        str(tf_snapshot),
        "--model",
        str(tf_models / "cnn.keras"),
        "--image",
        CPU_TAG,
    ]
    process = subprocess.Popen([sys.executable, "-m", "envrepro", *argv], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # wait for the container to exist (not a time limit on the code under test)
            if docker_engine.running_containers(OWN_CONTAINERS):
                break
            time.sleep(0.1)
        assert docker_engine.running_containers(OWN_CONTAINERS), "the parity container never started"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate()
        assert process.returncode == 130
        assert "interrupted" in stderr
        assert "Traceback" not in stderr
        assert docker_engine.running_containers(OWN_CONTAINERS) == []
    finally:
        process.kill()


def test_diff_of_the_image_against_its_snapshot_has_nothing_that_breaks_results(
    cpu_build: object, tf_snapshot: Path
) -> None:
    result = _run_cli(["diff", str(tf_snapshot), f"image:{CPU_TAG}", "--format", "json"])
    data = json.loads(result.stdout)
    groups = {d["group"] for d in data["differences"]}
    assert "breaks" not in groups, result.stdout
    assert result.exit_code == 0


# What the container writes is untrusted: model code (here a --custom-objects module, which wraps the
# os._exit the probe leaves by, so that it acts after the probe has written its results) replaces them with
# hostile files, inside the real image.

PLANTS = {
    "symlink": "os.remove(RECORD); os.symlink('/etc/passwd', RECORD)",
    "fifo": "os.remove(RECORD); os.mkfifo(RECORD)",
    "sparse": "f = open(os.path.join(OUT, 'model-0.npz'), 'r+b'); f.truncate(64 << 30); f.close()",
    "invalid-json": "f = open(RECORD, 'w'); f.write('{not json'); f.close()",
}
AFTER_THE_PROBE = """
_leave = os._exit
def _planted_exit(code):
    {hook}()
    _leave(code)
os._exit = _planted_exit
"""
PLANT_MODULE = """
import os
OUT = "/envrepro/out"
RECORD = os.path.join(OUT, "record.json")
def plant():
    {action}
""" + AFTER_THE_PROBE.format(hook="plant")


@pytest.mark.parametrize(
    ("plant", "reason"),
    [
        ("symlink", "record.json is a symbolic link"),
        ("fifo", "record.json is a FIFO"),
        ("sparse", "model-0.npz is 68719476736 bytes, over the 256 MiB cap"),
        ("invalid-json", "record.json is not JSON"),
    ],
)
def test_hostile_files_written_by_model_code_are_refused_and_never_followed(
    cpu_build: object,
    tf_snapshot: Path,
    tf_models: Path,
    tmp_path: Path,
    docker_engine: DockerEngine,
    plant: str,
    reason: str,
) -> None:
    module = tmp_path / "planted.py"
    module.write_text(PLANT_MODULE.format(action=PLANTS[plant]), encoding="utf-8")
    result, _ = parity(tf_snapshot, tf_models / "dense.h5", tmp_path / "r", "--custom-objects", str(module))
    assert result.exit_code == 2, result.stderr
    line = one_error(result)
    assert line.startswith("error: the probe's output is not valid: "), line
    assert reason in line
    assert "root:x:0:0" not in result.stderr + result.stdout
    assert docker_engine.running_containers(OWN_CONTAINERS) == []


def test_a_model_killed_by_the_memory_limit_names_the_limit_and_the_flag(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, tmp_path: Path, docker_engine: DockerEngine
) -> None:
    result, _ = parity(tf_snapshot, tf_models / "dense.h5", tmp_path, "--memory", "64m")
    assert result.exit_code == 2
    assert "ran out of memory" in one_error(result)
    assert "64 MiB limit" in result.stderr
    assert "--memory" in result.stderr
    assert docker_engine.running_containers(OWN_CONTAINERS) == []


def test_the_container_has_the_cpu_limit_asked_for(
    cpu_build: object, tf_snapshot: Path, tf_models: Path, tmp_path: Path
) -> None:
    probe = tmp_path / "cpus.py"
    probe.write_text(
        "import json, os\n"
        "def note():\n"
        "    quota = open('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').read().strip() "
        "if os.path.exists('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') "
        "else open('/sys/fs/cgroup/cpu.max').read()\n"
        "    path = '/envrepro/out/record.json'\n"
        "    record = json.load(open(path))\n"
        "    record['models'][0]['timings']['cpu_quota'] = float(quota.split()[0])\n"
        "    json.dump(record, open(path, 'w'))\n" + AFTER_THE_PROBE.format(hook="note"),
        encoding="utf-8",
    )
    result, data = parity(
        tf_snapshot, tf_models / "dense.h5", tmp_path / "r", "--cpus", "0.5", "--custom-objects", str(probe)
    )
    assert result.exit_code == 0, result.stderr
    assert data["timings"]["cpu_quota"] == 50000.0  # 0.5 CPU of the default 100000 us period
