"""`envrepro snapshot` against real TensorFlow environments and real models saved in every format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envrepro import snapshot as snapshot_mod
from envrepro.probe.modelprobe import array_digest

pytestmark = pytest.mark.integration

ENVREPRO_OWN_DEPS = {"click", "rich", "pydantic", "pydantic-core", "jinja2", "docker", "pip-tools", "typer"}


def _pip_list(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"], check=True, capture_output=True, text=True
    ).stdout
    return {snapshot_mod.normalize_name(item["name"]): item["version"] for item in json.loads(out)}


def test_snapshot_names_exact_tf_keras_numpy_and_every_distribution(cli, tf_python, tmp_path):
    out = tmp_path / "envrepro.snapshot.json"
    result = cli("snapshot", "--python", str(tf_python), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    snap = snapshot_mod.load(out)
    installed = _pip_list(tf_python)
    recorded = {dist.key: dist.version for dist in snap.environment.distributions}
    assert recorded == installed
    tf = snap.environment.tensorflow
    assert tf is not None
    assert tf.version == installed["tensorflow-cpu"] == "2.21.0"
    assert tf.keras_version == installed["keras"]
    assert tf.keras_major == 3
    assert tf.keras_module == "keras"
    assert snap.environment.distribution("numpy").version == installed["numpy"]  # type: ignore[union-attr]
    assert not tf.built_with_cuda
    assert [d.type for d in tf.devices] == ["CPU"]


def test_snapshot_contains_none_of_envreproes_own_dependencies(cli, tf_python, tmp_path):
    out = tmp_path / "s.json"
    assert cli("snapshot", "--python", str(tf_python), "-o", str(out)).exit_code == 0
    target_has = set(_pip_list(tf_python))
    recorded = {dist.key for dist in snapshot_mod.load(out).environment.distributions}
    assert not (recorded & (ENVREPRO_OWN_DEPS - target_has))
    assert "envrepro" not in recorded


def test_tf215_snapshot_says_keras_2(cli, tf215_python, tmp_path):
    out = tmp_path / "s.json"
    assert cli("snapshot", "--python", str(tf215_python), "-o", str(out)).exit_code == 0
    tf = snapshot_mod.load(out).environment.tensorflow
    assert tf is not None
    assert tf.version == "2.15.1"
    assert tf.keras_major == 2
    assert tf.keras_version.startswith("2.15")


def test_models_in_every_format_get_fingerprints_and_reference_outputs(cli, tf_python, tf_models, tmp_path):
    out = tmp_path / "envrepro.snapshot.json"
    models = [tf_models / "dense.h5", tf_models / "dense.keras", tf_models / "dense_savedmodel"]
    args = [arg for model in models for arg in ("--model", str(model))]
    result = cli("snapshot", "--python", str(tf_python), *args, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    snap = snapshot_mod.load(out)
    assert [m.format for m in snap.models] == ["h5", "keras", "savedmodel"]
    h5, keras_file, saved = snap.models
    assert h5.weights_sha256 == keras_file.weights_sha256, "same weights saved twice must fingerprint equal"
    assert h5.architecture_sha256 == keras_file.architecture_sha256
    assert [w.shape for w in h5.weights] == [(8, 16), (16,), (16, 3), (3,)]
    assert h5.inputs[0].name == "features"
    assert h5.inputs[0].shape == (None, 8)
    for model in snap.models:
        assert model.error is None
        assert model.reference is not None
        with np.load(out.parent / model.reference.file) as data:
            assert {key: array_digest(data[key]) for key in data.files} == model.reference.arrays_sha256
            assert data["input.0"].shape == (64, 8)
            assert data["output.0"].shape == (64, 3)
            np.testing.assert_allclose(data["output.0"].sum(axis=1), 1.0, rtol=1e-5)
    with np.load(out.parent / h5.reference.file) as a, np.load(out.parent / saved.reference.file) as b:  # type: ignore[union-attr]
        np.testing.assert_allclose(a["output.0"], b["output.0"], atol=1e-6)


def test_same_environment_twice_gives_the_same_document_apart_from_the_timestamp(
    cli, tf_python, tf_models, tmp_path
):
    docs = []
    for name in ("a.json", "b.json"):
        out = tmp_path / name
        assert (
            cli(
                "snapshot", "--python", str(tf_python), "--model", str(tf_models / "dense.h5"), "-o", str(out)
            ).exit_code
            == 0
        )
        doc = json.loads(out.read_text())
        doc.pop("created_at")
        doc.pop("references_sha256")  # of the .npz bytes, which carry their write time (zip headers)
        doc["models"][0]["reference"].pop("file")
        docs.append(doc)
    assert docs[0] == docs[1]


def test_keras2_h5_is_fingerprinted_by_tf215(cli, tf215_python, tf215_models, tmp_path):
    out = tmp_path / "s.json"
    result = cli(
        "snapshot",
        "--python",
        str(tf215_python),
        "--model",
        str(tf215_models / "dense.h5"),
        "--model",
        str(tf215_models / "dense_savedmodel"),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    models = snapshot_mod.load(out).models
    assert models[0].saved_keras_version.startswith("2.15")
    assert all(model.reference is not None for model in models)


def test_user_inputs_are_used_instead_of_generated_ones(cli, tf_python, tf_models, tmp_path):
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, features=np.linspace(-1, 1, 5 * 8, dtype=np.float32).reshape(5, 8))
    out = tmp_path / "s.json"
    assert (
        cli(
            "snapshot",
            "--python",
            str(tf_python),
            "--model",
            str(tf_models / "dense.keras"),
            "--inputs",
            str(inputs),
            "-o",
            str(out),
        ).exit_code
        == 0
    )
    reference = snapshot_mod.load(out).models[0].reference
    assert reference is not None
    assert reference.samples == 5
    assert reference.seed is None
    assert reference.inputs_from == "file:inputs.npz"


def test_truncated_h5_is_one_clear_error_and_the_previous_snapshot_is_kept_byte_identical(
    cli, tf_python, tf_models, tmp_path
):
    out = tmp_path / "s.json"
    good = cli("snapshot", "--python", str(tf_python), "--model", str(tf_models / "dense.h5"), "-o", str(out))
    assert good.exit_code == 0, good.stderr
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = cli(
        "snapshot", "--python", str(tf_python), "--model", str(tf_models / "truncated.h5"), "-o", str(out)
    )
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert "truncated or corrupt" in result.error_lines[0]
    assert result.error_lines[0].endswith(f"({out} left as it was)")
    assert "Traceback" not in result.stderr
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # the JSON and its references, byte for byte; no temporary file left
    assert snapshot_mod.load(out).models[0].path == str(tf_models / "dense.h5")


def test_two_snapshots_written_at_once_to_one_output_leave_a_consistent_pair(tf_python, tf_models, tmp_path):
    out = tmp_path / "s.json"
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "envrepro", "snapshot", "--python", str(tf_python), "--samples", "8",
             "--model", str(tf_models / "dense.h5"), "--seed", str(seed), "-o", str(out)],
            stderr=subprocess.PIPE, text=True,
        )
        for seed in (1, 2)
    ]  # fmt: skip
    for run in runs:
        _, stderr = run.communicate()
        assert run.returncode == 0, stderr
    snap = snapshot_mod.load(out)  # its recorded references digest matches the files on disk
    assert snap.references_sha256 is not None
    reference = snap.models[0].reference
    assert reference is not None
    assert reference.seed in (1, 2)
    with np.load(out.parent / reference.file) as data:  # the arrays are the ones this JSON recorded
        assert {key: array_digest(data[key]) for key in data.files} == reference.arrays_sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.ref"]
    assert [p.name for p in (tmp_path / "s.ref").iterdir()] == [Path(reference.file).name]


def test_custom_layer_needs_custom_objects_and_loads_with_them(cli, tf_python, tf_models, tmp_path):
    out = tmp_path / "s.json"
    result = cli(
        "snapshot", "--python", str(tf_python), "--model", str(tf_models / "custom.h5"), "-o", str(out)
    )
    assert result.exit_code == 2
    assert "custom objects" in result.error_lines[0]
    assert "--custom-objects" in result.stderr
    result = cli(
        "snapshot",
        "--python",
        str(tf_python),
        "--model",
        str(tf_models / "custom.h5"),
        "--custom-objects",
        str(tf_models / "custom_layers.py"),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    assert snapshot_mod.load(out).models[0].reference is not None


def test_lambda_model_is_refused_in_safe_mode(cli, tf_python, tf_models, tmp_path):
    result = cli(
        "snapshot",
        "--python",
        str(tf_python),
        "--model",
        str(tf_models / "lambda.keras"),
        "-o",
        str(tmp_path / "s.json"),
    )
    assert result.exit_code == 2
    assert "unsafe deserialization" in result.error_lines[0]
