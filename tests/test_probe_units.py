"""Pure parts of the probe and the host: redaction, platform tags, install origins, atomic writes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from envrepro.errors import InterpreterError, OutputError
from envrepro.fsutil import staged_file, write_atomic
from envrepro.introspect import reference_dir, resolve_interpreter
from envrepro.probe import envprobe
from envrepro.probe.redact import redact, redact_text

CASES = Path(__file__).parent / "cases"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:s3cr3t@pypi.acme.dev/simple", "https://***@pypi.acme.dev/simple"),
        (
            "git+https://oauth2:glpat-abcdefghijklmnopqrst@gitlab.com/a/b.git",
            "git+https://***@gitlab.com/a/b.git",
        ),
        (
            "https://bucket.s3.amazonaws.com/x.whl?X-Amz-Signature=abc123&y=1",
            "https://bucket.s3.amazonaws.com/x.whl?X-Amz-Signature=***&y=1",
        ),
        ("token ghp_" + "a" * 36 + " end", "token *** end"),
        ("AKIA" + "ABCDEFGHIJKLMNOP", "***"),
        ("--xla_dump_to=/tmp/xla", "--xla_dump_to=/tmp/xla"),
        ("https://pypi.org/simple", "https://pypi.org/simple"),
    ],
)
def test_redaction_hides_credentials_and_keeps_everything_else(text, expected):
    assert redact_text(text) == expected


def test_redaction_walks_nested_records():
    record = {"a": ["https://u:p@h/x", {"b": "hf_" + "x" * 30}], "n": 3, "ok": None}
    assert redact(record) == {"a": ["https://***@h/x", {"b": "***"}], "n": 3, "ok": None}


def test_linux_platform_tags_follow_glibc_newest_first():
    tags = envprobe.platform_tags("Linux", "x86_64", {"name": "glibc", "version": "2.36"})
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux2014_x86_64" in tags
    assert tags.index("manylinux_2_17_x86_64") < tags.index("manylinux2014_x86_64")
    assert tags[-1] == "linux_x86_64"
    arm = envprobe.platform_tags("Linux", "aarch64", {"name": "glibc", "version": "2.31"})
    assert "manylinux2014_aarch64" in arm
    assert "manylinux2010_aarch64" not in arm


def test_macos_platform_tags_name_the_architecture():
    tags = envprobe.platform_tags("Darwin", "arm64", {"name": "", "version": ""})
    assert all(tag.startswith("macosx_") for tag in tags)
    assert any(tag.endswith("_arm64") for tag in tags)


@pytest.mark.parametrize(
    ("direct_url", "kind"),
    [
        (None, "index"),
        ({"url": "file:///src/pkg", "dir_info": {"editable": True}}, "editable"),
        ({"url": "file:///wheels/pkg-1.0-py3-none-any.whl", "archive_info": {}}, "local"),
        ({"url": "https://github.com/a/b.git", "vcs_info": {"vcs": "git", "commit_id": "abc"}}, "vcs"),
        ({"url": "https://files.example/pkg-1.0.whl", "archive_info": {"hashes": {"sha256": "00"}}}, "url"),
    ],
)
def test_install_origin_is_read_from_pep610_records(direct_url, kind):
    text = json.dumps(direct_url) if direct_url is not None else None
    assert envprobe.classify_origin(text)["kind"] == kind


def test_unreadable_direct_url_is_unknown_not_a_crash():
    assert envprobe.classify_origin("{not json")["kind"] == "unknown"


def test_cpu_flags_keep_only_kernel_relevant_instructions(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8 ht\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    cpu = envprobe.collect_cpu(str(cpuinfo))
    assert cpu["vendor"] == "GenuineIntel"
    assert cpu["model"].startswith("Intel(R) Xeon(R) Platinum")
    assert cpu["flags"] == sorted(
        [
            "sse4_2",
            "avx",
            "avx2",
            "fma",
            "avx512f",
            "avx512_vnni",
            "avx512_bf16",
            "amx_tile",
            "amx_bf16",
            "amx_int8",
        ]
    )


def test_only_the_named_environment_variables_are_collected(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.setenv("GITHUB_TOKEN", "x")
    assert envprobe.collect_env(["TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS"]) == {
        "TF_ENABLE_ONEDNN_OPTS": "0"
    }


def test_interpreter_defaults_to_the_active_virtualenv_then_conda(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\n")
    (venv / "bin" / "python").chmod(0o755)
    assert resolve_interpreter(None, {"VIRTUAL_ENV": str(venv)}) == venv / "bin" / "python"
    assert resolve_interpreter(None, {"CONDA_PREFIX": str(venv)}) == venv / "bin" / "python"
    assert resolve_interpreter(str(venv), {}) == venv / "bin" / "python"
    with pytest.raises(InterpreterError, match="holds no bin/python"):
        resolve_interpreter(str(tmp_path / "venv" / "bin"), {})


def test_reference_arrays_live_next_to_the_snapshot():
    assert reference_dir(Path("out/envrepro.lock.json")) == Path("out/envrepro.lock.ref")
    assert reference_dir(Path("snap")) == Path("snap.ref")


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.json"
    target.write_text("old")

    class BoomError(Exception):
        pass

    def interrupted_write() -> None:
        with staged_file(target) as tmp:
            tmp.write_text("half")
            raise BoomError

    with pytest.raises(BoomError):
        interrupted_write()
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_keyboard_interrupt_during_a_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "f.json"
    target.write_text("old")

    def interrupted_write() -> None:
        with staged_file(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_write()
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_write_atomic_replaces_the_file(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    write_atomic(target, "new")
    assert target.read_text() == "new"
    with pytest.raises(OutputError):
        write_atomic(target / "child", "x")


def _probe_main():  # the probe's entry point; importing it puts its directory on sys.path
    from envrepro.probe import main as probe_main

    return probe_main


def test_the_environment_record_taken_beside_tensorflow_is_the_one_taken_inline():
    probe = _probe_main()
    args = probe._parse(["--out", "unused.json", "--no-tensorflow", "--env-names", "PYTHONHASHSEED"])
    inline = json.loads(json.dumps({**probe._stdlib_environment(args), "tensorflow": None}))
    assert probe.collect_environment(args) == inline


def test_a_child_that_fails_gives_nothing_and_the_record_is_taken_inline(monkeypatch):
    probe = _probe_main()

    def broken() -> dict:
        raise RuntimeError("the child's work failed")

    assert probe._in_child(broken)() is None
    assert probe._in_child(lambda: {"python": {"version": "3.11.7"}})() == {"python": {"version": "3.11.7"}}
    monkeypatch.setattr(probe, "_in_child", lambda work: lambda: None)
    args = probe._parse(["--out", "unused.json", "--no-tensorflow"])
    assert probe.collect_environment(args)["python"] == probe._stdlib_environment(args)["python"]


def test_without_fork_the_record_is_taken_inline(monkeypatch):
    probe = _probe_main()
    monkeypatch.delattr(probe.os, "fork")
    assert probe._in_child(lambda: {"x": 1})() is None


def test_arguments_sent_after_the_start_are_read_once_go_exists(tmp_path):
    probe = _probe_main()
    (tmp_path / "args.json").write_text(json.dumps(["--model", "/envrepro/in/model.keras"]))
    threading.Timer(0.05, (tmp_path / "go").touch).start()  # the host's second archive, `go` last
    assert probe._arguments_sent(str(tmp_path), 30.0) == ["--model", "/envrepro/in/model.keras"]


@pytest.mark.parametrize("sent", ['{"--model": "x"}', '["--model", 3]', '"--model"'])
def test_arguments_that_are_not_a_list_of_strings_stop_the_probe(tmp_path, sent):
    probe = _probe_main()
    (tmp_path / "args.json").write_text(sent)
    (tmp_path / "go").touch()
    with pytest.raises(SystemExit, match="not a list of strings"):
        probe._arguments_sent(str(tmp_path), 30.0)


def test_a_probe_whose_arguments_never_come_stops_at_its_timeout(tmp_path):
    probe = _probe_main()
    with pytest.raises(SystemExit, match=r"no arguments came within 0\.05 s"):
        probe._arguments_sent(str(tmp_path), 0.05)


def test_the_probe_leaves_without_the_interpreters_teardown_once_its_record_is_written(tmp_path):
    """The record is whole and the exit code 0, and the teardown (TensorFlow's takes 0.3-1.4 s) never runs:
    the atexit hook registered before the probe does not fire, while what was printed still comes out."""
    probe_main = Path(_probe_main().__file__)
    out, marker = tmp_path / "record.json", tmp_path / "teardown-ran"
    code = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
        "print('printed before the exit', end='')\n"
        f"sys.argv = [{str(probe_main)!r}, '--out', {str(out)!r}, '--no-tensorflow']\n"
        f"runpy.run_path({str(probe_main)!r}, run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "printed before the exit"
    assert json.loads(out.read_text(encoding="utf-8"))["environment"]["tensorflow"] is None
    assert not marker.exists()
