"""The snapshot and its reference directory on disk: replaced together and only on success, one writer at
a time, read only with the references it was written with, and the old file name still read."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from conftest import CASES

from envrepro import snapshot
from envrepro.errors import ReferenceMismatchError
from envrepro.snapshot_file import DEFAULT_NAME, LEGACY_NAME, default_path, reference_dir, write_snapshot

REF_NAME = "model.h5-cccccccccccc.npz"


def stamp(marker: str) -> str:
    """A valid timestamp that tells the writers' snapshots apart (the reference file holds it too)."""
    micros = int(hashlib.sha256(marker.encode()).hexdigest(), 16) % 10**6
    return f"2026-01-01T00:00:00.{micros:06d}+00:00"


def snapshot_with_reference(output: Path, marker: str) -> snapshot.Snapshot:
    """The TF 2.21 fixture environment with one model whose reference file lives in output's .ref/."""
    raw: dict[str, Any] = json.loads((CASES / "tf221-cpu-snapshot" / "envrepro.lock.json").read_text())
    raw["created_at"] = stamp(marker)
    raw["models"] = [{"path": "model.h5", "format": "h5", "reference": {
        "file": f"{reference_dir(output).name}/{REF_NAME}", "arrays_sha256": {}, "samples": 1, "seed": 0,
        "inputs_from": "generated"}}]  # fmt: skip
    return snapshot.Snapshot.model_validate(raw)


def write_pair(output: Path, marker: str, scratch: Path) -> snapshot.Snapshot:
    source = scratch / f"{marker}.npz"
    source.write_text(stamp(marker))
    snap = snapshot_with_reference(output, marker)
    return write_snapshot(snap, output, {snap.reference_files()[0]: source})


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_pair_is_written_with_the_digest_of_its_references(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    written = write_pair(out, "first", tmp_path)
    assert written.references_sha256 is not None
    assert json.loads(out.read_text())["references_sha256"] == written.references_sha256
    assert (tmp_path / "s.ref" / REF_NAME).read_text() == stamp("first")
    assert snapshot.load(out).references_sha256 == written.references_sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.npz", "s.json", "s.ref"]  # no .tmp/.lock


def test_a_failure_while_staging_leaves_the_previous_pair_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    write_pair(out, "good", tmp_path)
    before = files_under(tmp_path)
    snap = snapshot_with_reference(out, "bad")
    with pytest.raises(FileNotFoundError):
        write_snapshot(snap, out, {snap.reference_files()[0]: tmp_path / "missing.npz"})
    assert files_under(tmp_path) == before


def test_a_new_pair_without_references_removes_the_previous_references(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    write_pair(out, "with-model", tmp_path)
    bare = snapshot.Snapshot.model_validate(
        json.loads((CASES / "tf221-cpu-snapshot" / LEGACY_NAME).read_text())
    )
    write_snapshot(bare, out, {})
    assert not (tmp_path / "s.ref").exists()
    assert "references_sha256" not in json.loads(out.read_text())


def test_a_tampered_reference_file_is_rejected_naming_the_snapshot(tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "s.json"
    write_pair(out, "original", tmp_path)
    (tmp_path / "s.ref" / REF_NAME).write_text("tampered")
    with pytest.raises(ReferenceMismatchError):
        snapshot.load(out)
    result = cli("show", str(out))
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: {out}: its reference files do not match the snapshot "
        "(sha256 differs from references_sha256; edited, or another run's)"
    ]


def test_a_snapshot_copied_without_its_references_still_loads(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    write_pair(out, "original", tmp_path)
    copy = tmp_path / "elsewhere" / "s.json"
    copy.parent.mkdir()
    copy.write_bytes(out.read_bytes())
    assert snapshot.load(copy).models[0].path == "model.h5"  # build and diff need no references


def _writer(output: str, worker: int, rounds: int) -> None:
    scratch = Path(output).parent / f"scratch-{worker}"
    scratch.mkdir()
    for n in range(rounds):
        write_pair(Path(output), f"w{worker}-{n}", scratch)


def test_concurrent_writers_to_one_output_leave_a_consistent_pair(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(out), w, 40)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0, 0, 0]
    loaded = snapshot.load(out)  # the recorded digest matches the references on disk
    assert (tmp_path / "s.ref" / REF_NAME).read_text() == loaded.created_at
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("scratch-")) == [
        "s.json",
        "s.ref",
    ]


def test_the_default_snapshot_is_the_new_name_and_the_old_one_is_read_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert default_path(tmp_path) == tmp_path / DEFAULT_NAME
    (tmp_path / LEGACY_NAME).write_text("{}")
    with caplog.at_level(logging.WARNING):
        assert default_path(tmp_path) == tmp_path / LEGACY_NAME
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / LEGACY_NAME} is the old name: rename it to {DEFAULT_NAME} "
        "(and envrepro.lock.ref/ to envrepro.snapshot.ref/)"
    ]
    (tmp_path / DEFAULT_NAME).write_text("{}")
    assert default_path(tmp_path) == tmp_path / DEFAULT_NAME


def test_show_without_a_path_reads_the_old_name_with_a_one_line_note(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / LEGACY_NAME).write_bytes((CASES / "tf221-cpu-snapshot" / LEGACY_NAME).read_bytes())
    monkeypatch.chdir(tmp_path)
    result = cli("show")
    assert result.exit_code == 0, result.stderr
    assert "Python" in result.stdout
    assert result.stderr.count("old name") == 1
    assert " ".join(result.stderr.split()).startswith(
        "WARNING envrepro.lock.json is the old name: rename it to envrepro.snapshot.json"
    )
