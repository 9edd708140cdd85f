"""`.ci/run` runs the test command README.md shows a newcomer, with the tests it names by default."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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
