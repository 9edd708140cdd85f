"""`.ci/run` runs the test command README.md shows a newcomer, with the tests it names by default."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PARALLEL_SESSIONS_TEST, engine_state_test

ROOT = Path(__file__).resolve().parent.parent


def readme_test_command() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"and then runs the test command:\n\n```bash\n(.+?)\n```", readme)
    assert found, "README.md does not show the test command"
    return shlex.split(found.group(1))


def ci_run_test_command() -> list[str]:
    """The pytest line of .ci/run, with its `apart` array as it is when no variable leaves a test out."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    (line,) = [row for row in script.splitlines() if row.startswith(".venv/bin/python -m pytest")]
    apart = re.findall(r"apart\+=\(([^)]*)\)", script)
    words = shlex.split(line.split("||")[0])
    index = words.index("${apart[@]}")
    return [*words[:index], *(w for group in apart for w in shlex.split(group)), *words[index + 1 :]]


def test_ci_run_runs_the_test_command_the_readme_shows() -> None:
    assert ci_run_test_command() == readme_test_command()
    assert readme_test_command()[:3] == [".venv/bin/python", "-m", "pytest"]


def test_the_workers_take_the_longest_measured_files_first_and_unmeasured_ones_before_them() -> None:
    from schedule import longest_first

    nodeids = ["a.py::x", "a.py::y", "b.py::x", "c.py::x", "d.py::x", "e.py::x"]
    durations = {"a.py::x": 1.0, "a.py::y": 1.5, "b.py::x": 10.0, "d.py::x": 3.0, "e.py::x": 3.0}
    durations["gone.py::z"] = 99.0  # a test no longer collected weighs nothing
    assert longest_first(nodeids, durations) == [
        "c.py::x",  # never measured: first
        "b.py::x",
        "d.py::x",  # 3 s each: d before e, as given
        "e.py::x",
        "a.py::x",  # 2.5 s together, its tests in their order
        "a.py::y",
    ]


def test_durations_are_merged_by_test_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import schedule

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert schedule.load() == {}
    schedule.save({"a.py::x": 1.5, "b.py::x": 2.0})
    schedule.save({"a.py::x": 4.0})
    assert schedule.load() == {"a.py::x": 4.0, "b.py::x": 2.0}
    schedule.durations_file().write_text("not json", encoding="utf-8")
    assert schedule.load() == {}


def collected(*args: str) -> list[str]:
    """The test ids `pytest --collect-only` keeps for these arguments (a separate process, as CI runs)."""
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_theengine_state_tests_run_in_the_parallel_sessions_not_a_third_time() -> None:
    both = ("tests/test_parallel_sessions.py", "tests/test_shared_engine.py")
    with_it = collected(*both)
    assert with_it == [PARALLEL_SESSIONS_TEST]  # its two sessions run test_shared_engine.py, side by side
    alone = collected("tests/test_shared_engine.py")  # what each of those sessions collects
    assert alone and all(engine_state_test(nodeid) for nodeid in alone)
    not_selected = collected(*both, "-k", "not two")
    assert not_selected == alone  # left out by -k: the session runs them itself
