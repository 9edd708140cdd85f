"""The in-image runner without a daemon: what goes in (owned by root, unwritable), the limits, and what
comes out read as untrusted (links, FIFOs, devices, oversize files and bad JSON or .npz are refused)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from support.fake_engine import ContainerFs, FakeEngine

from envrepro import outbox, runner
from envrepro.engine_api import ImageInfo, RunResult
from envrepro.errors import ProbeOutOfMemoryError, ProbeOutputError
from envrepro.inbox import InFile, input_tar
from envrepro.runner import OUT_DIR, Limits

IMAGE = "envrepro-test/runner:1"


def engine_with(handler: Callable[[Sequence[str], ContainerFs, Mapping[str, str]], RunResult]) -> FakeEngine:
    return FakeEngine(images={IMAGE: ImageInfo("sha256:1", 1, (IMAGE,), {}, ())}, handlers={IMAGE: handler})


def writes(**files: bytes) -> Callable[[Sequence[str], ContainerFs, Mapping[str, str]], RunResult]:
    def run(command: Sequence[str], fs: ContainerFs, environment: Mapping[str, str]) -> RunResult:
        for name, data in files.items():
            fs.path(f"{OUT_DIR}/{name}").write_bytes(data)
        return RunResult(0, "ok")

    return run


def test_the_probe_record_and_files_come_back_and_the_container_is_removed(tmp_path: Path) -> None:
    engine = engine_with(writes(**{"record.json": b'{"environment": {}}', "x.bin": b"1"}))
    result = runner.run_probe(engine, IMAGE)
    assert result.record == {"environment": {}}
    assert result.files["x.bin"] == b"1"
    assert engine.removed_containers == 1
    assert engine.containers == {}


def test_inputs_go_in_owned_by_root_and_unwritable_and_only_out_is_the_users(tmp_path: Path) -> None:
    folder = tmp_path / "pre"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "stats.json").write_text("{}")
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o775)
    with tarfile.open(fileobj=io.BytesIO(input_tar([InFile(folder, "pre")]))) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert members["out"].uid == 10001 and members["out"].isdir()
    for name in ("in", "in/pre", "in/pre/sub", "in/pre/sub/stats.json", "in/pre/run.sh"):
        assert members[name].uid == 0 and not members[name].mode & 0o222, name
    assert members["in/pre/sub/stats.json"].mode == 0o444
    assert members["in/pre/run.sh"].mode == 0o555


def test_the_cpu_limit_defaults_to_two_or_the_engines_cpus_if_fewer() -> None:
    engine = engine_with(writes(**{"record.json": b"{}"}))
    runner.run_probe(engine, IMAGE)
    engine.cpus = 1
    runner.run_probe(engine, IMAGE)
    runner.run_probe(engine, IMAGE, limits=Limits(cpus=0.5))
    assert [spec.cpus for spec in engine.runs] == [2.0, 1.0, 0.5]


def test_a_container_killed_by_its_memory_limit_says_so_and_how_to_raise_it() -> None:
    engine = engine_with(lambda *args: RunResult(137, "Killed", oom_killed=True))
    with pytest.raises(ProbeOutOfMemoryError, match=r"ran out of memory .* 512 MiB limit") as caught:
        runner.run_probe(engine, IMAGE, limits=Limits(memory_bytes=512 * 1024**2))
    assert "--memory" in str(caught.value.hint)
    assert engine.removed_containers == 1


def plant(
    action: Callable[[Path], None],
) -> Callable[[Sequence[str], ContainerFs, Mapping[str, str]], RunResult]:
    def run(command: Sequence[str], fs: ContainerFs, environment: Mapping[str, str]) -> RunResult:
        action(fs.path(OUT_DIR))
        return RunResult(0, "ok")

    return run


def _symlink(out: Path) -> None:
    (out / "record.json").symlink_to("/etc/passwd")


def _hardlink(out: Path) -> None:
    (out / "a").write_text("{}")
    os.link(out / "a", out / "record.json")


def _fifo(out: Path) -> None:
    os.mkfifo(out / "record.json")


def _bad_json(out: Path) -> None:
    (out / "record.json").write_text("{not json")


def _not_an_object(out: Path) -> None:
    (out / "record.json").write_text("[1, 2]")


def _not_utf8(out: Path) -> None:
    (out / "record.json").write_bytes(b'{"a": "\xff"}')


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (_symlink, "record.json is a symbolic link"),
        (_hardlink, "is a hard link"),
        (_fifo, "record.json is a FIFO"),
        (_bad_json, "record.json is not JSON"),
        (_not_an_object, "record.json is not a JSON object"),
        (_not_utf8, "record.json is not JSON"),
    ],
)
def test_what_the_container_wrote_is_refused_unless_it_is_plain_files_and_valid_json(
    action: Callable[[Path], None], reason: str
) -> None:
    engine = engine_with(plant(action))
    with pytest.raises(ProbeOutputError, match=reason) as caught:
        runner.run_probe(engine, IMAGE)
    assert str(caught.value).startswith("the probe's output is not valid: ")
    assert "root:" not in str(caught.value)
    assert engine.removed_containers == 1


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> list[bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return [buffer.getvalue()]


@pytest.mark.parametrize("name", ["/etc/passwd", "out/../../etc/passwd"])
def test_names_outside_the_directory_are_refused(name: str) -> None:
    with pytest.raises(ProbeOutputError, match="outside the output directory"):
        outbox.read_files(tar_of((tarfile.TarInfo(name), b"x")))


def test_a_file_over_the_cap_is_refused_from_its_header_without_reading_it() -> None:
    header = tarfile.TarInfo("out/model-0.npz")
    header.size = 1 << 40  # a huge (sparse) file: the header says so before any data
    block = header.tobuf(tarfile.GNU_FORMAT)
    served = []

    def chunks() -> object:
        served.append(block)
        yield block
        while True:  # endless zeros: the reader must stop by itself
            served.append(b"")
            yield b"\0" * 65536

    with pytest.raises(ProbeOutputError, match="over the 1 MiB cap"):
        outbox.read_files(chunks(), cap=1024 * 1024)  # type: ignore[arg-type]
    assert len(served) < 100


def test_an_output_over_the_cap_in_total_is_refused() -> None:
    files = [(tarfile.TarInfo(f"out/f{n}"), b"x" * 600_000) for n in range(3)]
    with pytest.raises(ProbeOutputError, match="larger than 1 MiB"):
        outbox.read_files(tar_of(*files), cap=1024 * 1024)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_npz_files_are_read_without_pickles_and_garbage_is_refused() -> None:
    good = {"a.npz": npz_bytes(x=np.arange(3))}
    assert outbox.parse_npz(good, "a.npz")["x"].tolist() == [0, 1, 2]
    pickled = {"a.npz": npz_bytes(x=np.array([{"k": 1}], dtype=object))}
    with pytest.raises(ProbeOutputError, match=r"a\.npz is not a valid \.npz"):
        outbox.parse_npz(pickled, "a.npz")
    with pytest.raises(ProbeOutputError, match=r"a\.npz is not a valid \.npz"):
        outbox.parse_npz({"a.npz": b"PK garbage"}, "a.npz")
    with pytest.raises(ProbeOutputError, match="unpacks to more than"):
        outbox.parse_npz({"a.npz": npz_bytes(x=np.zeros(300_000))}, "a.npz", cap=1024 * 1024)
    with pytest.raises(ProbeOutputError, match=r"b\.npz is missing"):
        outbox.parse_npz(good, "b.npz")


def test_a_record_that_is_json_but_not_the_probes_record_is_refused(tmp_path: Path) -> None:
    from envrepro.image_run import image_environment

    engine = engine_with(writes(**{"record.json": json.dumps({"environment": "nope"}).encode()}))
    with pytest.raises(ProbeOutputError, match="not the probe's record"):
        image_environment(engine, IMAGE)
