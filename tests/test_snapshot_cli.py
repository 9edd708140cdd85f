"""`envrepro snapshot` on a real plain virtualenv: bad inputs, redaction, atomic writes, provenance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envrepro import snapshot as snapshot_mod

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
HF_TOKEN = "hf_" + "ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210"


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(out)


def _plant_vcs_distribution(site: Path, url: str) -> None:
    """A distribution installed from a private git repository (PEP 610 record, as pip writes it)."""
    info = site / "privatepkg-0.3.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: privatepkg\nVersion: 0.3.0\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "direct_url.json").write_text(
        json.dumps(
            {"url": url, "vcs_info": {"vcs": "git", "commit_id": "0123456789abcdef0123456789abcdef01234567"}}
        )
    )


@pytest.fixture
def planted_python(plain_python: Path, tmp_path: Path) -> Path:
    """A copy-free view of the plain env with a private VCS package planted for the duration of a test."""
    site = _site_packages(plain_python)
    _plant_vcs_distribution(site, f"https://ci-bot:{GITHUB_TOKEN}@github.com/acme/privatepkg.git")
    yield plain_python
    import shutil

    shutil.rmtree(site / "privatepkg-0.3.0.dist-info")


def test_a_planted_token_appears_nowhere_in_the_output(cli, planted_python, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("TF_XLA_FLAGS", f"--tf_xla_auto_jit=2 --note={HF_TOKEN}")
    monkeypatch.setenv("PIP_INDEX_URL", f"https://user:{GITHUB_TOKEN}@pypi.acme.dev/simple")
    out = tmp_path / "envrepro.snapshot.json"
    result = cli("-vv", "snapshot", "--python", str(planted_python), "-o", str(out), "--show")
    assert result.exit_code == 0, result.stderr
    written = out.read_text()
    for secret in (GITHUB_TOKEN, HF_TOKEN, "wJalrXUtnFEMI"):
        assert secret not in written
        assert secret not in result.stdout
        assert secret not in result.stderr
    snap = snapshot_mod.load(out)
    assert "HF_TOKEN" not in snap.environment.env
    assert "AWS_SECRET_ACCESS_KEY" not in snap.environment.env
    assert snap.environment.env["TF_XLA_FLAGS"].startswith("--tf_xla_auto_jit=2")
    private = snap.environment.distribution("privatepkg")
    assert private is not None
    assert private.origin.url == "https://***@github.com/acme/privatepkg.git"


def test_packages_not_reproducible_from_an_index_are_flagged_with_what_to_do(cli, planted_python, tmp_path):
    out = tmp_path / "s.json"
    result = cli("snapshot", "--python", str(planted_python), "-o", str(out), "--show")
    assert result.exit_code == 0
    private = snapshot_mod.load(out).environment.distribution("privatepkg")
    assert private is not None
    assert private.origin.kind == "vcs"
    assert not private.reproducible
    assert "publish a release" in private.reason
    assert "Not reproducible from an index" in result.stdout
    assert "1 not reproducible" in result.stderr


def test_a_plain_environment_is_a_cpu_snapshot_without_tensorflow(cli, plain_python, tmp_path):
    out = tmp_path / "s.json"
    assert cli("snapshot", "--python", str(plain_python), "-o", str(out)).exit_code == 0
    env = snapshot_mod.load(out).environment
    assert env.tensorflow is None
    assert env.gpu.gpus == ()
    assert env.python.version == ".".join(map(str, sys.version_info[:3]))
    assert env.python.is_virtualenv
    assert env.python.abi_tag == "cp{}{}".format(*sys.version_info[:2])
    assert any(tag.startswith("manylinux_2_") for tag in env.python.platform_tags)
    assert {d.key for d in env.distributions} >= {"pip"}


def test_an_output_path_with_brackets_is_written_and_named_as_it_is(cli, plain_python, tmp_path):
    """`[/]` in the output's path made the `wrote ...` line raise rich's MarkupError after the file was
    written (a traceback, and exit 1 from a run that had worked)."""
    out = tmp_path / "run[" / "]" / "s.json"  # the path holds `[/]`
    out.parent.mkdir(parents=True)
    result = cli("snapshot", "--python", str(plain_python), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert "run[/]" in "".join(result.stderr.split())  # named as it is (the console may wrap the line)
    assert "Traceback" not in result.stderr and out.is_file()


def test_the_active_virtualenv_is_the_default_target(cli, plain_python, tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTUAL_ENV", str(plain_python.parent.parent))
    out = tmp_path / "s.json"
    assert cli("snapshot", "-o", str(out)).exit_code == 0
    assert snapshot_mod.load(out).environment.python.prefix == str(plain_python.parent.parent)


@pytest.mark.parametrize(
    ("make_python", "message"),
    [
        (lambda d: d / "missing" / "python", "no such file"),
        (lambda d: d, "holds no bin/python"),
        (lambda d: _script(d / "notpython", "#!/bin/sh\necho nope >&2\nexit 3\n"), "did not run Python"),
        (lambda d: _script(d / "liar", "#!/bin/sh\necho hello\n"), "did not answer like a Python"),
        (lambda d: _file(d / "data.txt"), "not an executable file"),
    ],
    ids=["missing", "dir-without-python", "exits-nonzero", "not-python", "not-executable"],
)
def test_a_python_that_is_not_an_interpreter_is_one_clear_error(cli, tmp_path, make_python, message):
    result = cli("snapshot", "--python", str(make_python(tmp_path)), "-o", str(tmp_path / "s.json"))
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert message in result.error_lines[0]
    assert "hint: pass --python" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s.json").exists()


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


def test_a_missing_model_is_one_clear_error(cli, plain_python, tmp_path):
    result = cli(
        "snapshot",
        "--python",
        str(plain_python),
        "--model",
        str(tmp_path / "nope.h5"),
        "-o",
        str(tmp_path / "s.json"),
    )
    assert result.exit_code == 2
    assert result.error_lines == [f"error: {tmp_path / 'nope.h5'}: no such model file or directory"]


@pytest.mark.parametrize("where", ["parent-is-a-file", "read-only-filesystem"])
def test_an_unwritable_output_is_one_clear_error(cli, plain_python, tmp_path, where):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    target = blocker / "s.json" if where == "parent-is-a-file" else Path("/proc/envrepro-test.json")
    result = cli("snapshot", "--python", str(plain_python), "-o", str(target))
    assert result.exit_code == 2
    assert result.error_lines[0].startswith(f"error: cannot write {target}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_an_interrupted_snapshot_leaves_the_previous_file_intact(plain_python, tmp_path, signum, code):
    out = tmp_path / "envrepro.snapshot.json"
    out.write_text('{"previous": true}\n')
    slow = _script(tmp_path / "slowpython", f'#!/bin/sh\nsleep 10\nexec {plain_python} "$@"\n')
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "envrepro", "snapshot", "--python", str(slow), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    for _ in range(300):  # wait for the probe's temporary directory (not a time limit on the code)
        if any(temp.iterdir()):
            break
        time.sleep(0.1)
    assert any(temp.iterdir()), "the probe never started"
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert out.read_text() == '{"previous": true}\n'
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".lock"))] == []
    assert list(temp.iterdir()) == []  # the probe's temporary directory was removed on the way out


def test_a_model_that_fails_leaves_the_previous_snapshot_and_references_byte_identical(
    cli, plain_python, tmp_path
):
    out = tmp_path / "s.json"
    out.write_bytes(b'{"previous": "good"}\n')
    (tmp_path / "s.ref").mkdir()
    (tmp_path / "s.ref" / "model.h5-000000000000.npz").write_bytes(b"previous reference")
    model = _file(tmp_path / "model.h5")  # no TensorFlow in the plain environment: the model cannot load
    result = cli("snapshot", "--python", str(plain_python), "--model", str(model), "-o", str(out))
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert result.error_lines[0].endswith(f"({out} left as it was)")
    assert out.read_bytes() == b'{"previous": "good"}\n'
    assert [p.name for p in (tmp_path / "s.ref").iterdir()] == ["model.h5-000000000000.npz"]
    assert (tmp_path / "s.ref" / "model.h5-000000000000.npz").read_bytes() == b"previous reference"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.h5", "s.json", "s.ref"]


def test_the_default_output_is_envrepro_snapshot_json(cli, plain_python, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("snapshot", "--python", str(plain_python))
    assert result.exit_code == 0, result.stderr
    assert "wrote envrepro.snapshot.json" in result.stderr
    assert snapshot_mod.load(tmp_path / "envrepro.snapshot.json").environment.tensorflow is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envrepro.snapshot.json"]


def test_show_summarises_a_snapshot_and_rejects_a_broken_one(cli, plain_python, tmp_path):
    out = tmp_path / "s.json"
    assert cli("snapshot", "--python", str(plain_python), "-o", str(out)).exit_code == 0
    shown = cli("show", str(out))
    assert shown.exit_code == 0
    assert "Python" in shown.stdout
    assert "none (CPU snapshot)" in shown.stdout
    broken = tmp_path / "broken.json"
    broken.write_text(out.read_text()[:200])
    result = cli("show", str(broken))
    assert result.exit_code == 2
    assert "is not a valid envrepro snapshot" in result.error_lines[0]


def test_a_snapshot_from_a_newer_schema_is_refused_by_name(cli, plain_python, tmp_path):
    out = tmp_path / "s.json"
    assert cli("snapshot", "--python", str(plain_python), "-o", str(out)).exit_code == 0
    doc = json.loads(out.read_text())
    doc["schema_version"] = 99
    out.write_text(json.dumps(doc))
    result = cli("show", str(out))
    assert result.exit_code == 2
    assert "schema_version 99" in result.error_lines[0]


def test_schema_prints_the_snapshot_json_schema(cli):
    result = cli("schema", "snapshot")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "Snapshot"


def test_unknown_option_is_a_usage_error_with_exit_2(cli):
    result = cli("snapshot", "--no-such-option")
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert result.error_lines[0].startswith("error: No such option")
    assert os.linesep.join(result.stderr.splitlines()).count("hint:") == 1


def test_a_missing_inputs_file_is_one_clear_error(cli, plain_python, tmp_path):
    missing = tmp_path / "inputs.npz"
    result = cli(
        "snapshot", "--python", str(plain_python), "--inputs", str(missing), "-o", str(tmp_path / "s.json")
    )
    assert result.exit_code == 2
    assert result.error_lines == [f"error: {missing}: no such inputs file"]
    assert "hint: --inputs takes an .npz file" in result.stderr
    assert not (tmp_path / "s.json").exists()
