"""Preprocessing parity against the real engine: a preprocessing function recorded in the real TF 2.21
environment, replayed in the image `envrepro build` made of it. The planted difference: the same code
reads other normalisation statistics (serving/stats.json) than in training (training/stats.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xmlschema
from conftest import CASES, CPU_TAG, CliResult, _run_cli
from test_parity_docker import JUNIT_XSD

pytestmark = [pytest.mark.integration, pytest.mark.docker]

CASE = CASES / "preprocess-stats"


@pytest.fixture(scope="module")
def recorded(tf_python: Path, tf_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`snapshot --model dense.h5 --preprocess training/normalise.py:normalise --raw raw.npz`."""
    folder = tmp_path_factory.mktemp("preprocess")
    raw = folder / "raw.npz"
    np.savez(raw, np.random.default_rng(7).normal(10.0, 2.0, (32, 8)))
    snap = folder / "envrepro.lock.json"
    result = _run_cli(["snapshot", "--python", str(tf_python), "--model", str(tf_models / "dense.h5"),
                       "--preprocess", f"{CASE / 'training' / 'normalise.py'}:normalise", "--raw", str(raw),
                       "-o", str(snap)])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return snap


def parity(snap: Path, model: Path, reports: Path, *extra: str) -> tuple[CliResult, dict[str, object]]:
    reports.mkdir(parents=True, exist_ok=True)
    result = _run_cli(["parity", "--snapshot", str(snap), "--model", str(model), "--image", CPU_TAG,
                       "--report", str(reports / "parity.json"), "--markdown", str(reports / "parity.md"),
                       "--junit", str(reports / "parity.xml"), *extra])  # fmt: skip
    written = reports / "parity.json"
    return result, json.loads(written.read_text(encoding="utf-8")) if written.exists() else {}


def test_the_snapshot_records_the_function_its_arrays_and_the_model_on_its_output(recorded: Path) -> None:
    data = json.loads(recorded.read_text(encoding="utf-8"))
    pre = data["preprocessing"]
    assert pre["function"].endswith("training/normalise.py:normalise")
    assert pre["outputs"] == [{"name": "preprocessed.0", "shape": [None, 8], "dtype": "float32"}]
    assert set(pre["arrays_sha256"]) == {"raw.0", "preprocessed.0"}
    with np.load(recorded.parent / pre["file"]) as arrays:
        expected = ((arrays["raw.0"] - 10.0) / 2.0).astype(np.float32)
        np.testing.assert_array_equal(arrays["preprocessed.0"], expected)
    model = data["models"][0]
    assert model["reference"]["inputs_from"].startswith("preprocess:")
    assert model["reference"]["arrays_sha256"]["input.0"] == pre["arrays_sha256"]["preprocessed.0"]
    assert model["input_preprocessing"] == []


def test_the_same_preprocessing_in_the_image_passes_both_stages(
    cpu_build: object, recorded: Path, tf_models: Path, tmp_path: Path
) -> None:
    result, data = parity(recorded, tf_models / "dense.h5", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert data["stage"] == "none"
    assert data["preprocessing"][0]["max_abs_error"] == 0.0  # type: ignore[index]
    assert "preprocessing matches" in result.stdout
    assert any("no preprocessing layer" in w for w in data["warnings"])  # type: ignore[attr-defined]


def test_other_normalisation_statistics_in_serving_are_named_as_preprocessing_not_the_model(
    cpu_build: object, recorded: Path, tf_models: Path, tmp_path: Path
) -> None:
    serving = f"{CASE / 'serving' / 'normalise.py'}:normalise"
    result, data = parity(recorded, tf_models / "dense.h5", tmp_path, "--preprocess", serving)
    assert result.exit_code == 1, result.stderr
    assert data["verdict"] == "fail"
    assert data["stage"] == "preprocessing"
    assert str(data["summary"]).startswith("FAIL: preprocessing differs")
    pre = data["preprocessing"][0]  # type: ignore[index]
    assert not pre["passed"]
    assert pre["max_abs_error"] > 0.1  # std 2.5 instead of 2 on one feature
    assert all(out["passed"] for out in data["outputs"])  # type: ignore[attr-defined]
    assert data["model_mismatch"] is False
    cause = data["likely_causes"][0]  # type: ignore[index]
    assert "preprocessing function" in cause["cause"]
    assert "preprocessing differs" in result.stdout
    assert "### Preprocessing" in (tmp_path / "parity.md").read_text(encoding="utf-8")
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(tmp_path / "parity.xml"))
    assert "PreprocessingDiffers" in (tmp_path / "parity.xml").read_text(encoding="utf-8")


def test_a_preprocessing_function_that_fails_in_training_is_one_error_and_writes_no_snapshot(
    tf_python: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw.npz"
    np.savez(raw, np.zeros((4, 8)))
    snap = tmp_path / "envrepro.lock.json"
    broken = f"{CASE / 'training' / 'normalise.py'}:broken"
    result = _run_cli(["snapshot", "--python", str(tf_python), "-o", str(snap),
                       "--preprocess", broken, "--raw", str(raw)])  # fmt: skip
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "no features today" in result.stderr
    assert "Traceback" not in result.stderr
    # A failed snapshot replaces nothing (issue 11.6): no file, no half of a pair, no temporary left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.npz"]
