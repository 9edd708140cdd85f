"""Loading models that need trust or code, with the real TensorFlow environments (Keras 3 and Keras 2).

A Lambda layer holds Python bytecode: without --unsafe-deserialization it is refused in every Keras format
and every Keras version (Keras 2 would load it from an .h5 without asking), and with the flag it loads.
A model that needs a custom class names that class and the flag, with the path as the user typed it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envrepro import snapshot as snapshot_mod

pytestmark = pytest.mark.integration

KERAS = ["keras3", "keras2"]


@pytest.fixture(params=KERAS)
def target(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """(interpreter, its models): TF 2.21 with Keras 3, TF 2.15.1 with Keras 2."""
    if request.param == "keras3":
        return request.getfixturevalue("tf_python"), request.getfixturevalue("tf_models")
    return request.getfixturevalue("tf215_python"), request.getfixturevalue("tf215_models")


def snapshot(cli, python: Path, model: Path | str, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return cli(
        "snapshot", "--python", str(python), "--model", str(model), "-o", str(out), "--samples", "4", *extra
    )


@pytest.mark.parametrize("model", ["lambda.h5", "lambda.keras"])
def test_lambda_model_is_refused_naming_the_flag_and_recorded_with_it(cli, target, model, tmp_path):
    python, models = target
    refused = snapshot(cli, python, models / model, tmp_path / "refused.json")
    assert refused.exit_code == 2
    assert len(refused.error_lines) == 1
    assert "unsafe deserialization" in refused.error_lines[0]
    assert "--unsafe-deserialization" in refused.error_lines[0]
    assert "'double'" in refused.error_lines[0]  # the Lambda layer, by name
    out = tmp_path / "allowed.json"
    allowed = snapshot(cli, python, models / model, out, "--unsafe-deserialization")
    assert allowed.exit_code == 0, allowed.stderr
    recorded = snapshot_mod.load(out).models[0]
    assert recorded.error is None
    assert recorded.reference is not None


@pytest.mark.parametrize("flag", [(), ("--unsafe-deserialization",)], ids=["safe", "unsafe"])
def test_lambda_savedmodel_is_a_graph_and_records_in_either_mode(cli, target, flag, tmp_path):
    python, models = target
    out = tmp_path / "s.json"
    result = snapshot(cli, python, models / "lambda_savedmodel", out, *flag)
    assert result.exit_code == 0, result.stderr
    recorded = snapshot_mod.load(out).models[0]
    assert recorded.format == "savedmodel"
    assert recorded.reference is not None


@pytest.mark.parametrize("model", ["custom.h5", "custom_seq.keras"])
def test_missing_custom_class_is_named_with_the_flag_and_the_path_as_given(
    cli, target, model, tmp_path, monkeypatch
):
    python, models = target
    monkeypatch.chdir(models)
    result = snapshot(cli, python, model, tmp_path / "s.json")
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    line = result.error_lines[0]
    assert line.startswith(f"error: model {model}: needs custom objects that are not available: Scale")
    assert "--custom-objects" in line
    assert "could not be deserialized" not in line
    assert "…" not in line
    assert str(models) not in result.stderr
    loaded = snapshot(cli, python, model, tmp_path / "s.json", "--custom-objects", "custom_layers.py")
    assert loaded.exit_code == 0, loaded.stderr
