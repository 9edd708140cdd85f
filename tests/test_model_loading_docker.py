"""Loading models that need trust or code inside the image (`envrepro parity`), with the real engine.

The probe that runs in the image is the one `snapshot` runs in the training environment, so the
Keras 2 cases are covered on the snapshot side (test_model_loading_tf.py); here the TF 2.21 image.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import _run_cli
from test_parity_docker import one_error, parity

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def record(python: Path, model: Path, snap: Path, *extra: str) -> None:
    snap.parent.mkdir(parents=True, exist_ok=True)
    argv = ["snapshot", "--python", str(python), "--model", str(model), "-o", str(snap), "--samples", "4"]
    result = _run_cli([*argv, *extra])
    assert result.exit_code == 0, result.stderr


def test_lambda_h5_is_refused_in_the_image_naming_the_flag_and_passes_with_it(
    cpu_build: object, tf_python: Path, tf_models: Path, tmp_path: Path
) -> None:
    snap = tmp_path / "lambda-h5" / "envrepro.lock.json"
    model = tf_models / "lambda.h5"
    record(tf_python, model, snap, "--unsafe-deserialization")
    refused, _ = parity(snap, model, tmp_path / "refused")
    assert refused.exit_code == 2
    assert "--unsafe-deserialization" in one_error(refused)
    allowed, data = parity(snap, model, tmp_path / "allowed", "--unsafe-deserialization")
    assert allowed.exit_code == 0, allowed.stderr
    assert data["verdict"] == "pass"


@pytest.mark.parametrize("flag", [(), ("--unsafe-deserialization",)], ids=["safe", "unsafe"])
def test_lambda_savedmodel_recorded_with_the_flag_passes_in_the_image_in_either_mode(
    cpu_build: object, tf_python: Path, tf_models: Path, tmp_path: Path, flag: tuple[str, ...]
) -> None:
    """A SavedModel is a TensorFlow graph: its Lambda holds no Python code to deserialize, so the image
    loads it with or without the flag, as the training environment recorded it (test_model_loading_tf)."""
    snap = tmp_path / "lambda-savedmodel" / "envrepro.lock.json"
    model = tf_models / "lambda_savedmodel"
    record(tf_python, model, snap, "--unsafe-deserialization")
    result, data = parity(snap, model, tmp_path / "reports", *flag)
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert data["verdict"] == "pass"


def test_missing_custom_class_in_the_image_is_named_with_the_path_as_given(
    cpu_build: object, tf_python: Path, tf_models: Path, tmp_path: Path
) -> None:
    snap = tmp_path / "custom" / "envrepro.lock.json"
    model = tf_models / "custom_seq.keras"
    custom = str(tf_models / "custom_layers.py")
    record(tf_python, model, snap, "--custom-objects", custom)
    result, _ = parity(snap, model, tmp_path / "refused")
    assert result.exit_code == 2
    line = one_error(result)
    assert line.startswith(f"error: model {model}: needs custom objects that are not available: Scale")
    assert "--custom-objects" in line
    assert "could not be deserialized" not in line
    assert "/envrepro/" not in result.stderr  # no path from inside the container
    loaded, data = parity(snap, model, tmp_path / "loaded", "--custom-objects", custom)
    assert loaded.exit_code == 0, loaded.stderr
    assert data["verdict"] == "pass"
