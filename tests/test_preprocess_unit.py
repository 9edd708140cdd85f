"""Preprocessing parity without a daemon: the probe's preprocessing step, and parity's report on the fake
engine (which plays the container, writing what the probe writes)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CASES, CliResult
from support.fake_engine import ContainerFs
from test_parity_unit import ARCH, FILE, IMAGE, WEIGHTS, engine_with, members

from envrepro import snapshot
from envrepro.engine_api import RunResult
from envrepro.parity import ParityRequest, run_parity
from envrepro.probe.modelprobe import array_digest
from envrepro.runner import OUT_DIR, in_path

sys.path.insert(0, str(Path(snapshot.__file__).parent / "probe"))
import preprocess as probe_preprocess  # the probe's module, imported the way the probe imports it

PREPROCESS_DIR = in_path("preprocess")
RAW_MOUNT = in_path("preprocess.npz")
CASE = CASES / "preprocess-stats"
TRAINING = CASE / "training" / "normalise.py"
SERVING = CASE / "serving" / "normalise.py"


def recorded_snapshot(tmp_path: Path, *, input_dtype: str = "float32") -> tuple[Path, Path, dict[str, Any]]:
    """A snapshot (the real TF 2.21 environment fixture) with one model and recorded preprocessing."""
    raw_doc = json.loads((CASES / "tf221-cpu-snapshot" / "envrepro.lock.json").read_text(encoding="utf-8"))
    ref_dir = tmp_path / "envrepro.lock.ref"
    ref_dir.mkdir()
    raw = np.random.default_rng(0).normal(10, 2, (8, 8))
    pre = probe_preprocess.run_preprocess(f"{TRAINING}:normalise", _npz(tmp_path / "raw.npz", raw),
                                          str(ref_dir / "preprocess-0.npz"))  # fmt: skip
    inputs = np.load(ref_dir / "preprocess-0.npz")["preprocessed.0"]
    probs = np.random.default_rng(1).random((8, 3), dtype=np.float32)
    np.savez(ref_dir / "model.h5-c.npz", **{"input.0": inputs, "output.0": probs})
    model = {
        "path": "model.h5", "format": "h5", "file_sha256": FILE, "saved_keras_version": "3.15.0",
        "architecture_sha256": ARCH, "weights_sha256": WEIGHTS, "weights": [],
        "inputs": [{"name": "features", "shape": [None, 8], "dtype": input_dtype}],
        "outputs": [{"name": "probs", "shape": [None, 3], "dtype": "float32"}],
        "reference": {"file": "envrepro.lock.ref/model.h5-c.npz",
                      "arrays_sha256": {"input.0": array_digest(inputs), "output.0": array_digest(probs)},
                      "samples": 8, "seed": None, "inputs_from": "preprocess:normalise.py:normalise"},
        "input_preprocessing": [],
    }  # fmt: skip
    raw_doc["models"] = [model]
    raw_doc["preprocessing"] = {
        **{k: pre[k] for k in ("function", "source_sha256", "samples", "outputs", "arrays_sha256")},
        "file": "envrepro.lock.ref/preprocess-0.npz",
        "raw_from": "file:raw.npz",
    }
    snap = tmp_path / "envrepro.lock.json"
    snap.write_text(json.dumps(raw_doc), encoding="utf-8")
    (tmp_path / "model.h5").write_bytes(b"a model")
    return snap, tmp_path / "model.h5", raw_doc


def _npz(path: Path, *arrays: np.ndarray[Any, Any]) -> str:
    np.savez(path, **{f"raw.{i}": a for i, a in enumerate(arrays)})
    return str(path)


def container(raw_doc: Mapping[str, Any], *, model_delta: float = 0.0) -> Callable[..., RunResult]:
    """What the probe does inside the image; the preprocessing really runs, from the mounted directory."""

    def run(command: Sequence[str], fs: ContainerFs, environment: Mapping[str, str]) -> RunResult:
        out = fs.path(OUT_DIR)
        spec = command[command.index("--preprocess") + 1] if "--preprocess" in command else None
        record: dict[str, Any] = {"environment": raw_doc["environment"]}
        if spec is not None:
            assert command[command.index("--raw") + 1] == RAW_MOUNT
            host_spec = spec.replace(PREPROCESS_DIR, str(fs.path(PREPROCESS_DIR)))
            pre = probe_preprocess.run_preprocess(
                host_spec, str(fs.path(RAW_MOUNT)), str(out / "preprocess.npz"), save_raw=False
            )
            record["preprocessing"] = {**pre, "function": spec, "error": None}
        reference = fs.path(command[command.index("--inputs") + 1])
        with np.load(reference) as data:
            np.savez(out / "model-0.npz", **{"output.0": data["output.0"] + np.float32(model_delta)})
        record["models"] = [{**raw_doc["models"][0], "error": None, "reference": None}]
        (out / "record.json").write_text(json.dumps(record), encoding="utf-8")
        return RunResult(0, "ok")

    return run


def parity(snap: Path, model: Path, raw_doc: dict[str, Any], **options: Any) -> Any:
    delta = options.pop("model_delta", 0.0)
    engine = engine_with(container(raw_doc, model_delta=delta))
    report = run_parity(
        ParityRequest(snapshot_path=snap, model=model, image=IMAGE, **options), lambda: engine
    )
    return report, engine


def test_same_preprocessing_passes_and_its_directory_and_raw_samples_are_copied_in_read_only(
    tmp_path: Path,
) -> None:
    snap, model, raw_doc = recorded_snapshot(tmp_path)
    report, engine = parity(snap, model, raw_doc)
    assert report.verdict == "pass"
    assert report.stage == "none"
    assert [p.name for p in report.preprocessing] == ["preprocessed.0"]
    assert report.preprocessing[0].max_abs_error == 0.0
    assert "preprocessing matches" in report.summary
    sent = {f"/envrepro/{m.name}": m for tar in engine.uploads for m in members(tar)}
    expected = {
        path.relative_to(TRAINING.parent).as_posix()
        for path in TRAINING.parent.rglob("*.*")
        if "__pycache__" not in path.parts
    }
    assert expected <= {
        name[len(PREPROCESS_DIR) + 1 :] for name in sent if name.startswith(PREPROCESS_DIR + "/")
    }
    for name in (PREPROCESS_DIR, f"{PREPROCESS_DIR}/normalise.py", RAW_MOUNT):
        assert sent[name].uid == 0 and not sent[name].mode & 0o222, name
    assert f"{PREPROCESS_DIR}/normalise.py:normalise" in engine.commands[0]


def test_other_statistics_in_the_image_are_named_as_a_preprocessing_difference_not_a_model_one(
    tmp_path: Path,
) -> None:
    snap, model, raw_doc = recorded_snapshot(tmp_path)
    report, _ = parity(snap, model, raw_doc, preprocess=f"{SERVING}:normalise")
    assert report.verdict == "fail"
    assert report.stage == "preprocessing"
    assert report.summary.startswith("FAIL: preprocessing differs: preprocessed.0 outside tolerance")
    assert "the model itself matches" in report.summary
    assert not report.preprocessing[0].passed
    assert report.preprocessing[0].max_abs_error == pytest.approx(0.5, abs=0.3)
    assert all(out.passed for out in report.outputs)
    cause = report.likely_causes[0]
    assert "preprocessing function" in cause.cause
    assert "source is unchanged" in cause.evidence  # same code, other stats.json next to it


def test_preprocessing_and_model_both_differing_is_stage_both(tmp_path: Path) -> None:
    snap, model, raw_doc = recorded_snapshot(tmp_path)
    report, _ = parity(snap, model, raw_doc, preprocess=f"{SERVING}:normalise", model_delta=1e-2)
    assert report.stage == "both"
    assert "preprocessing differs" in report.summary
    assert "and model differs" in report.summary


def test_the_reports_separate_the_two_stages(tmp_path: Path) -> None:
    from envrepro.report import parity_json, parity_junit, parity_markdown

    snap, model, raw_doc = recorded_snapshot(tmp_path)
    report, _ = parity(snap, model, raw_doc, preprocess=f"{SERVING}:normalise")
    markdown = parity_markdown(report)
    assert "### Preprocessing" in markdown
    assert "### Model" in markdown
    junit = parity_junit(report)
    assert 'name="preprocessing preprocessed.0"' in junit
    assert 'type="PreprocessingDiffers"' in junit
    assert json.loads(parity_json(report))["stage"] == "preprocessing"


def test_a_model_without_preprocessing_layers_is_warned_about(tmp_path: Path) -> None:
    snap, model, raw_doc = recorded_snapshot(tmp_path)
    report, _ = parity(snap, model, raw_doc)
    warning = next(w for w in report.warnings if "no preprocessing layer" in w)
    assert "it matches" in warning


def test_inputs_of_another_dtype_than_the_model_takes_are_warned_about(tmp_path: Path) -> None:
    snap, model, raw_doc = recorded_snapshot(tmp_path, input_dtype="float16")
    report, _ = parity(snap, model, raw_doc)
    assert any("the model takes float16, the reference inputs are float32" in w for w in report.warnings)


def test_inputs_of_another_shape_than_the_model_takes_are_warned_about(tmp_path: Path) -> None:
    from envrepro.explain import model_checks
    from envrepro.snapshot import ModelRecord

    model = ModelRecord.model_validate(
        {"path": "m", "inputs": [{"name": "image", "shape": [None, 32, 32, 3], "dtype": "float32"}]}
    )
    found = model_checks(model, {"input.0": np.zeros((4, 28, 28, 3), np.float32)})
    assert found == (
        "input image: the model takes shape (None, 32, 32, 3), the reference inputs have (4, 28, 28, 3)",
    )
    assert model_checks(model, {"input.0": np.zeros((4, 32, 32, 3), np.float32)}) == ()


def test_parity_preprocess_without_recorded_preprocessing_is_refused(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    snap, model, raw_doc = recorded_snapshot(tmp_path)
    del raw_doc["preprocessing"]
    snap.write_text(json.dumps(raw_doc), encoding="utf-8")
    result = cli("parity", "--snapshot", str(snap), "--model", str(model), "--image", IMAGE,
                 "--preprocess", f"{SERVING}:normalise")  # fmt: skip
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert "no recorded preprocessing" in result.error_lines[0]


def test_a_snapshot_written_before_preprocessing_existed_loads_and_keeps_its_digest() -> None:
    path = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
    old = snapshot.load(path)
    assert old.preprocessing is None
    assert "preprocessing" not in json.loads(old.to_json())
    data = json.loads(path.read_text(encoding="utf-8"))
    data["models"] = [{"path": "m.h5", "format": "h5"}]
    with_model = snapshot.Snapshot.model_validate(data)
    assert "input_preprocessing" not in json.loads(with_model.to_json())["models"][0]
    payload = with_model.model_dump(mode="json", exclude={"created_at", "envrepro_version", "preprocessing"})
    del payload["models"][0]["input_preprocessing"]
    import hashlib

    assert with_model.digest() == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# The probe's preprocessing step, run here (NumPy is all it needs)


def test_raw_samples_are_read_from_numbered_keys_or_a_single_array(tmp_path: Path) -> None:
    a, b = np.zeros((2, 3)), np.ones((2,))
    assert [x.shape for x in probe_preprocess.read_raw(_npz(tmp_path / "n.npz", a, b))] == [(2, 3), (2,)]
    np.savez(tmp_path / "one.npz", images=a)
    assert len(probe_preprocess.read_raw(str(tmp_path / "one.npz"))) == 1
    np.savez(tmp_path / "two.npz", x=a, y=b)
    with pytest.raises(probe_preprocess.ModelProbeError, match=r"raw\.0, raw\.1") as caught:
        probe_preprocess.read_raw(str(tmp_path / "two.npz"))
    assert caught.value.kind == "raw"


def test_a_function_that_raises_is_a_preprocess_error_naming_it(tmp_path: Path) -> None:
    raw = _npz(tmp_path / "raw.npz", np.zeros((2, 8)))
    with pytest.raises(probe_preprocess.ModelProbeError, match="no features today") as caught:
        probe_preprocess.run_preprocess(f"{TRAINING}:broken", raw, str(tmp_path / "out.npz"))
    assert caught.value.kind == "preprocess"
    with pytest.raises(probe_preprocess.ModelProbeError, match="defines no function"):
        probe_preprocess.run_preprocess(f"{TRAINING}:missing", raw, str(tmp_path / "out.npz"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--raw", "RAW"], "--raw needs --preprocess"),
        (["--preprocess", "m:f"], "--preprocess needs --raw FILE.npz"),
        (["--preprocess", "nofunction", "--raw", "RAW"], "is not MODULE:FUNCTION or FILE.py:FUNCTION"),
        (["--preprocess", "missing.py:f", "--raw", "RAW"], "no such preprocessing file"),
        (["--preprocess", "m:f", "--raw", "missing.npz"], "no such raw-samples file"),
    ],
)
def test_bad_preprocess_options_are_one_line_before_anything_runs(
    cli: Callable[..., CliResult], tmp_path: Path, argv: list[str], message: str
) -> None:
    raw = _npz(tmp_path / "raw.npz", np.zeros((2, 8)))
    args = [raw if arg == "RAW" else arg for arg in argv]
    result = cli("snapshot", "--python", sys.executable, "-o", str(tmp_path / "s.json"), *args)
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert message in result.error_lines[0]
