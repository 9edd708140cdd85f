"""`envrepro diff` on real snapshots of two real environments: TF 2.21 / Keras 3 and TF 2.15.1 / Keras 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CliResult, _run_cli

pytestmark = pytest.mark.integration


def _snapshot(python: Path, out: Path) -> Path:
    result = _run_cli(["snapshot", "--python", str(python), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def snap_221(tf_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _snapshot(tf_python, tmp_path_factory.mktemp("diff-221") / "tf221.json")


@pytest.fixture(scope="module")
def snap_215(tf215_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _snapshot(tf215_python, tmp_path_factory.mktemp("diff-215") / "tf215.json")


def diff_json(a: Path, b: Path) -> tuple[CliResult, dict[str, object]]:
    result = _run_cli(["diff", str(a), str(b), "--format", "json"])
    return result, json.loads(result.stdout)


def first_group(data: dict[str, object]) -> dict[str, dict[str, str]]:
    differences = data["differences"]
    assert isinstance(differences, list)
    return {d["kind"]: d for d in differences if d["group"] == "breaks"}


def test_tf_and_keras_changes_between_two_real_environments_lead_the_first_group_with_their_reasons(
    snap_221: Path, snap_215: Path
) -> None:
    result, data = diff_json(snap_221, snap_215)
    assert result.exit_code == 1, result.stderr
    assert data["breaks"] is True
    breaks = first_group(data)
    assert (breaks["tensorflow"]["a"], breaks["tensorflow"]["b"]) == ("2.21.0", "2.15.1")
    assert breaks["keras_major"]["a"].startswith("3.")
    assert breaks["keras_major"]["b"].startswith("2.15")
    assert "Keras 2 and Keras 3" in breaks["keras_major"]["why"]
    assert breaks["keras_major"]["source"]
    assert breaks["tensorflow"]["why"]
    assert breaks["tensorflow"]["source"]
    differences = data["differences"]
    assert isinstance(differences, list)
    assert [d["kind"] for d in differences[:2]] == ["keras_major", "tensorflow"]
    groups = [d["group"] for d in differences]
    assert groups == sorted(groups, key=["breaks", "may", "cosmetic"].index)
    may = {d["field"] for d in differences if d["group"] == "may"}
    assert "protobuf" in may  # 7.x with TF 2.21, 4.x with TF 2.15


def test_the_markdown_and_table_views_name_the_group_and_why(snap_221: Path, snap_215: Path) -> None:
    markdown = _run_cli(["diff", str(snap_221), str(snap_215), "--format", "markdown"])
    assert markdown.exit_code == 1
    assert "### breaks or changes results" in markdown.stdout
    assert "| keras | 3." in markdown.stdout
    assert "TF 2.16.1 release notes" in markdown.stdout
    table = _run_cli(["diff", str(snap_221), str(snap_215)])
    assert table.exit_code == 1
    assert "breaks or changes" in table.stdout
    assert "tensorflow" in table.stdout


def test_a_real_snapshot_diffed_with_itself_is_empty_and_exits_0(snap_221: Path) -> None:
    result, data = diff_json(snap_221, snap_221)
    assert result.exit_code == 0, result.stderr
    assert data == {"a": str(snap_221), "b": str(snap_221), "breaks": False, "differences": []}
    table = _run_cli(["diff", str(snap_221), str(snap_221)])
    assert table.exit_code == 0
    assert "no differences" in table.stdout


def test_a_hand_edited_snapshot_that_flips_only_onednn_is_caught(snap_221: Path, tmp_path: Path) -> None:
    raw = json.loads(snap_221.read_text(encoding="utf-8"))
    raw["environment"]["env"]["TF_ENABLE_ONEDNN_OPTS"] = "0"
    edited = tmp_path / "onednn-off.json"
    edited.write_text(json.dumps(raw), encoding="utf-8")
    result, data = diff_json(snap_221, edited)
    assert result.exit_code == 1, result.stderr
    differences = data["differences"]
    assert isinstance(differences, list)
    assert [(d["kind"], d["group"], d["field"], d["b"]) for d in differences] == [
        ("onednn", "breaks", "TF_ENABLE_ONEDNN_OPTS", "0")
    ]
    assert "oneDNN" in differences[0]["why"]


def test_onednn_on_by_default_on_one_cpu_but_not_the_other_is_caught(snap_221: Path, tmp_path: Path) -> None:
    raw = json.loads(snap_221.read_text(encoding="utf-8"))
    assert raw["environment"]["tensorflow"]["onednn_enabled"] is True  # TF's default on Linux x86
    raw["environment"]["tensorflow"]["onednn_enabled"] = False
    edited = tmp_path / "other-cpu.json"
    edited.write_text(json.dumps(raw), encoding="utf-8")
    result, data = diff_json(snap_221, edited)
    assert result.exit_code == 1
    assert first_group(data)["onednn"]["a"] == "on"


def test_a_live_interpreter_can_be_one_side(snap_221: Path, tf_python: Path) -> None:
    result, data = diff_json(snap_221, Path(f"python:{tf_python}"))
    assert result.exit_code == 0, result.stdout
    assert first_group(data) == {}


def test_a_missing_side_is_one_error_line(snap_221: Path, tmp_path: Path) -> None:
    result = _run_cli(["diff", str(snap_221), str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'nope.json'}: no such snapshot"
    ]
