"""Parity's logic without a daemon: the fake engine plays the container, writing what the probe writes."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CASES, CliResult
from support.fake_engine import ContainerFs, FakeEngine

from envrepro.engine_api import ImageInfo, RunResult
from envrepro.errors import (
    ContainerRunError,
    EngineUnavailableError,
    ImageNotFoundError,
    ModelError,
    ProbeTimeoutError,
    ReferenceCorruptError,
    ReferenceMissingError,
)
from envrepro.parity import ParityRequest, run_parity
from envrepro.probe.modelprobe import array_digest
from envrepro.runner import CONTAINER_USER, IN_DIR, OUT_DIR, ROOT
from envrepro.tolerance import Tolerance, Tolerances

IMAGE = "envrepro-test/unit:1"
ARCH, WEIGHTS, FILE = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A snapshot (the real TF 2.21 environment fixture) with one model and its reference file."""
    raw = json.loads((CASES / "tf221-cpu-snapshot" / "envrepro.lock.json").read_text(encoding="utf-8"))
    rng = np.random.default_rng(0)
    inputs = rng.random((8, 4), dtype=np.float32)
    logits = rng.random((8, 3), dtype=np.float32)
    ref_dir = tmp_path / "envrepro.lock.ref"
    ref_dir.mkdir()
    np.savez(ref_dir / "model.h5-cccccccccccc.npz", **{"input.0": inputs, "output.0": logits})
    model = {
        "path": "model.h5", "format": "h5", "file_sha256": FILE, "saved_keras_version": "3.15.0",
        "architecture_sha256": ARCH, "weights_sha256": WEIGHTS, "weights": [],
        "inputs": [{"name": "x", "shape": [None, 4], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [None, 3], "dtype": "float32"}],
        "reference": {"file": "envrepro.lock.ref/model.h5-cccccccccccc.npz",
                      "arrays_sha256": {"input.0": array_digest(inputs), "output.0": array_digest(logits)},
                      "samples": 8, "seed": 0, "inputs_from": "generated"},
    }  # fmt: skip
    raw["models"] = [model]
    snap = tmp_path / "envrepro.lock.json"
    snap.write_text(json.dumps(raw), encoding="utf-8")
    (tmp_path / "model.h5").write_bytes(b"a model")
    return snap, tmp_path / "model.h5", raw


def container(
    raw: Mapping[str, Any],
    *,
    delta: float = 0.0,
    env: Mapping[str, str] | None = None,
    weights: str = WEIGHTS,
    error: Mapping[str, str] | None = None,
) -> Callable[..., RunResult]:
    """What the probe does inside the image: write record.json and model-0.npz into the writable directory."""

    def run(command: Sequence[str], fs: ContainerFs, environment: Mapping[str, str]) -> RunResult:
        out = fs.path(OUT_DIR)
        reference = fs.path(command[command.index("--inputs") + 1])
        with np.load(reference) as data:
            outputs = data["output.0"] + np.float32(delta)
        np.savez(out / "model-0.npz", **{"output.0": outputs})
        environment_record = {**raw["environment"], "env": {**raw["environment"]["env"], **(env or {})}}
        model = {**raw["models"][0], "weights_sha256": weights, "error": error, "reference": None}
        record = {"environment": environment_record, "models": [model]}
        (out / "record.json").write_text(json.dumps(record), encoding="utf-8")
        return RunResult(0, "ok")

    return run


def engine_with(handler: Callable[..., RunResult]) -> FakeEngine:
    return FakeEngine(images={IMAGE: ImageInfo("sha256:1", 1, (IMAGE,), {}, ())}, handlers={IMAGE: handler})


def request(snap: Path, model: Path, **options: Any) -> ParityRequest:
    return ParityRequest(snapshot_path=snap, model=model, image=IMAGE, **options)


def test_same_outputs_pass_and_the_container_is_locked_down(
    recorded: tuple[Path, Path, dict[str, Any]],
) -> None:
    snap, model, raw = recorded
    engine = engine_with(container(raw))
    report = run_parity(request(snap, model), lambda: engine)
    assert report.verdict == "pass"
    assert report.outputs[0].max_abs_error == 0.0
    call = engine.runs[0]
    assert call.network_disabled
    assert call.user == CONTAINER_USER
    assert call.memory_bytes == 4 * 1024**3
    assert call.cpus == 2
    assert call.command[:2] == ("python3", f"{IN_DIR}/probe/main.py")
    assert call.volumes == (ROOT,)
    writable = [m.name for tar in engine.uploads for m in members(tar) if m.uid != 0 or m.mode & 0o222]
    assert writable == ["out"]
    assert engine.removed_containers == 1


def members(tar: bytes) -> list[tarfile.TarInfo]:
    """The members of a tar the runner uploaded (what the container user may write: uid != 0 or w bits)."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return archive.getmembers()


def test_drift_beyond_tolerance_fails_and_names_the_environment_change(
    recorded: tuple[Path, Path, dict[str, Any]],
) -> None:
    snap, model, raw = recorded
    engine = engine_with(container(raw, delta=1e-3, env={"TF_ENABLE_ONEDNN_OPTS": "0"}))
    report = run_parity(request(snap, model), lambda: engine)
    assert report.verdict == "fail"
    assert not report.model_mismatch
    assert report.outputs[0].max_abs_error == pytest.approx(1e-3, rel=1e-3)
    assert "oneDNN" in report.likely_causes[0].cause
    assert "TF_ENABLE_ONEDNN_OPTS" in report.likely_causes[0].evidence


def test_other_weights_are_a_model_mismatch_not_a_numeric_drift(
    recorded: tuple[Path, Path, dict[str, Any]],
) -> None:
    snap, model, raw = recorded
    report = run_parity(
        request(snap, model), lambda: engine_with(container(raw, delta=0.5, weights="d" * 64))
    )
    assert report.verdict == "fail"
    assert report.model_mismatch
    assert "weights" in report.likely_causes[0].cause
    assert report.summary.startswith("FAIL: model mismatch")


def test_per_output_tolerance_overrides_the_default(recorded: tuple[Path, Path, dict[str, Any]]) -> None:
    snap, model, raw = recorded
    loose = request(snap, model, tolerances=Tolerances(per_output={"logits": Tolerance(atol=1e-2, rtol=0)}))
    assert run_parity(loose, lambda: engine_with(container(raw, delta=1e-3))).verdict == "pass"


def test_timeout_is_an_error_and_the_container_is_removed(
    recorded: tuple[Path, Path, dict[str, Any]],
) -> None:
    snap, model, _ = recorded
    engine = engine_with(lambda *args: RunResult(-1, "", timed_out=True))
    with pytest.raises(ProbeTimeoutError, match="within 600 s"):
        run_parity(request(snap, model), lambda: engine)
    assert engine.removed_containers == 1


def test_a_container_that_writes_nothing_shows_the_tail_of_its_log(
    recorded: tuple[Path, Path, dict[str, Any]],
) -> None:
    snap, model, _ = recorded
    engine = engine_with(lambda *args: RunResult(1, "line 1\npython3: not found\n"))
    with pytest.raises(ContainerRunError, match="python3: not found"):
        run_parity(request(snap, model), lambda: engine)


def test_a_model_that_does_not_load_in_the_image_shows_the_loaders_message(
    recorded: tuple[Path, Path, dict[str, Any]],
) -> None:
    snap, model, raw = recorded
    failing = container(raw, error={"kind": "custom_objects", "detail": "Could not locate class 'Scale'"})
    with pytest.raises(ModelError, match="Scale") as caught:
        run_parity(request(snap, model), lambda: engine_with(failing))
    assert caught.value.hint is not None
    assert "--custom-objects" in caught.value.hint


def test_a_tampered_reference_is_refused(recorded: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    snap, model, raw = recorded
    ref = tmp_path / "envrepro.lock.ref" / "model.h5-cccccccccccc.npz"
    np.savez(ref, **{"input.0": np.zeros((8, 4), np.float32), "output.0": np.zeros((8, 3), np.float32)})
    with pytest.raises(ReferenceCorruptError, match="does not match"):
        run_parity(request(snap, model), lambda: engine_with(container(raw)))


def test_a_model_without_reference_never_reaches_the_engine(recorded: tuple[Path, Path, dict[str, Any]],
                                                            tmp_path: Path) -> None:  # fmt: skip
    snap, _, _ = recorded
    other = tmp_path / "other.keras"
    other.write_bytes(b"x")
    caught = input_error_first(request(snap, other), ReferenceMissingError, "no reference outputs")
    assert "envrepro snapshot" in str(caught.hint)


def input_error_first(req: ParityRequest, error: type[Exception], match: str) -> Exception:
    """A bad input is the error, whatever the engine: an engine that cannot be reached, an image that is not
    there, or one that runs: then the container (started early, runner.launched_probe) got the probe and
    nothing else, and was removed. Without --image (the snapshot names it) no engine is contacted."""

    def unreachable() -> FakeEngine:
        raise EngineUnavailableError("unix:///nowhere.sock", "no such file")

    engine = engine_with(container({}))
    for engines in (unreachable, FakeEngine, lambda: engine):
        with pytest.raises(error, match=match) as caught:
            run_parity(req, engines)
    assert [run.image for run in engine.runs] == [IMAGE] and engine.containers == {}
    assert len(engine.uploads) == 1 and "in/probe/main.py" in tar_names(engine.uploads[0])
    with pytest.raises(error, match=match):
        run_parity(replace(req, image=None), unreachable)
    return caught.value


def tar_names(tar: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return set(archive.getnames())


def test_image_not_found(recorded: tuple[Path, Path, dict[str, Any]]) -> None:
    snap, model, _ = recorded
    with pytest.raises(ImageNotFoundError, match="nope:1 not found") as caught:
        run_parity(ParityRequest(snapshot_path=snap, model=model, image="nope:1"), FakeEngine)
    assert "envrepro build" in str(caught.value.hint)


def test_bad_tolerance_spec_is_one_line(
    cli: Callable[..., CliResult], recorded: tuple[Path, Path, Any]
) -> None:
    snap, model, _ = recorded
    result = cli("parity", "--snapshot", str(snap), "--model", str(model), "--tolerance", "logits")
    assert result.exit_code == 2
    assert result.error_lines == ["error: --tolerance 'logits' is not OUTPUT=ATOL[,RTOL]"]


def test_missing_model_is_one_line(cli: Callable[..., CliResult], recorded: tuple[Path, Path, Any]) -> None:
    snap, model, _ = recorded
    result = cli("parity", "--snapshot", str(snap), "--model", str(model.parent / "missing.h5"))
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert "no such model" in result.error_lines[0]


# Flags: parsed to typed values once, before anything runs; a bad value is one line naming the flag


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--atol", "nan"], "--atol 'nan' is not a finite number >= 0"),
        (["--rtol", "nan"], "--rtol 'nan' is not a finite number >= 0"),
        (["--atol", "inf"], "--atol 'inf' is not a finite number >= 0"),
        (["--atol", "-1e-5"], "--atol '-1e-05' is not a finite number >= 0"),
        (["--tolerance", "logits=nan"], "--tolerance logits 'nan' is not a finite number >= 0"),
        (["--tolerance", "logits=1e-3,-1"], "--tolerance logits '-1.0' is not a finite number >= 0"),
        (["--timeout", "nan"], "--timeout 'nan' is not a finite number of seconds >= 1"),
        (["--timeout", "inf"], "--timeout 'inf' is not a finite number of seconds >= 1"),
        (["--timeout", "-1"], "--timeout '-1' is not a finite number of seconds >= 1"),
        (["--memory", "abc"], "--memory 'abc' is not a memory size of at least 6m"),
        (["--memory", "0"], "--memory '0' is not a memory size of at least 6m"),
        (["--cpus", "0"], "--cpus '0' is not a number of CPUs >= 0.01"),
        (["--cpus", "nan"], "--cpus 'nan' is not a number of CPUs >= 0.01"),
        (["--image", "UPPER CASE"], "--image 'UPPER CASE' is not a valid image reference"),
        (["--image", "Envrepro/x:1"], "--image 'Envrepro/x:1' is not a valid image reference"),
    ],
)
def test_bad_limits_tolerances_and_image_names_are_one_line_naming_the_flag(
    cli: Callable[..., CliResult], recorded: tuple[Path, Path, Any], argv: list[str], message: str
) -> None:
    snap, model, _ = recorded
    result = cli("parity", "--snapshot", str(snap), "--model", str(model), *argv)
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert message in result.error_lines[0]
    assert "Traceback" not in result.stderr


def test_a_tolerance_for_an_output_the_model_does_not_have_lists_its_outputs(
    cli: Callable[..., CliResult], recorded: tuple[Path, Path, Any]
) -> None:
    snap, model, _ = recorded
    result = cli("parity", "--snapshot", str(snap), "--model", str(model), "--tolerance", "logitz=1e-3")
    assert result.exit_code == 2
    assert result.error_lines == [
        "error: --tolerance logitz=...: the model has no output 'logitz' (its outputs: logits)"
    ]


def test_nan_tolerances_can_never_be_made_so_drift_cannot_pass(recorded: tuple[Path, Path, Any]) -> None:
    from envrepro.errors import ToleranceError

    snap, model, raw = recorded
    for options in ({"atol": float("nan")}, {"rtol": float("nan")}, {"atol": -1.0}):
        with pytest.raises(ToleranceError):
            request(snap, model, tolerances=Tolerances(**options))
    with pytest.raises(ToleranceError):
        Tolerance(atol=0.0, rtol=float("nan"))
    report = run_parity(request(snap, model), lambda: engine_with(container(raw, delta=1e-3)))
    assert report.verdict == "fail"


def test_nan_in_the_image_where_training_had_numbers_fails_even_with_loose_tolerances(
    recorded: tuple[Path, Path, Any],
) -> None:
    snap, model, raw = recorded
    loose = request(snap, model, tolerances=Tolerances(atol=1e30, rtol=1e30))
    report = run_parity(loose, lambda: engine_with(container(raw, delta=float("nan"))))
    assert report.verdict == "fail"
    assert report.outputs[0].reason == "NaN in different places"


def test_a_model_file_the_probe_replaced_with_garbage_is_an_invalid_output(
    recorded: tuple[Path, Path, Any],
) -> None:
    from envrepro.errors import ProbeOutputError

    snap, model, raw = recorded
    inner = container(raw)

    def garbage(command: Sequence[str], fs: ContainerFs, environment: Mapping[str, str]) -> RunResult:
        result = inner(command, fs, environment)
        (fs.path(OUT_DIR) / "model-0.npz").write_bytes(b"not an npz")
        return result

    with pytest.raises(ProbeOutputError, match=r"the probe's output is not valid: model-0\.npz"):
        run_parity(request(snap, model), lambda: engine_with(garbage))


@pytest.mark.parametrize("spec", ["image:UPPER", "image:a@sha256:xyz"])
def test_diff_of_an_image_without_a_valid_reference_is_one_line(
    cli: Callable[..., CliResult], spec: str
) -> None:
    result = cli("diff", spec, str(CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"))
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert "is not a valid image reference" in result.error_lines[0]


def test_a_tampered_reference_found_while_the_image_runs_removes_its_container(
    recorded: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    """The reference's digests are checked while the image runs (parity.py): the error is the same."""
    snap, model, raw = recorded
    ref = tmp_path / "envrepro.lock.ref" / "model.h5-cccccccccccc.npz"
    np.savez(ref, **{"input.0": np.zeros((8, 4), np.float32), "output.0": np.zeros((8, 3), np.float32)})
    engine = engine_with(container(raw))
    with pytest.raises(ReferenceCorruptError, match="does not match"):
        run_parity(request(snap, model), lambda: engine)
    assert engine.containers == {} and engine.removed_containers == 1


def test_a_missing_reference_file_never_reaches_the_engine(
    recorded: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    snap, model, _ = recorded
    (tmp_path / "envrepro.lock.ref" / "model.h5-cccccccccccc.npz").unlink()
    input_error_first(request(snap, model), ReferenceCorruptError, "the file is missing")
