"""The reusable workflow's "Install envrepro" step, run with bash: the venv gets no pip of its own when the
set-up Python's pip can install into it (`pip --python`, pip >= 22.3), and falls back to ensurepip when
that pip is older. The spec is a small wheel made here (a console script named `envrepro`, no
dependencies), so no index is needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_workflow_replay import REUSABLE, parse_workflows
from test_workflows import run_step
from wheels import make_wheel

OLD_PIP = """#!/bin/sh
# A set-up Python whose pip predates --python (22.3), as an old self-hosted runner's.
if [ "$1" = "-m" ] && [ "$2" = "pip" ] && [ "$3" = "--python" ]; then
    echo "no such option: --python" >&2
    exit 2
fi
exec {python} "$@"
"""


@pytest.fixture(scope="module")
def install_steps() -> list[str]:
    """The run: script of every step named "Install envrepro", in the workflow's order."""
    jobs = parse_workflows(REUSABLE)[REUSABLE]["jobs"]
    return [
        str(s["run"])
        for job in jobs.values()
        for s in job.get("steps", [])
        if s.get("name") == "Install envrepro"
    ]


def stub_wheel(folder: Path) -> Path:
    """A valid wheel with one module and an `envrepro` console script that prints a version."""
    module = {"envrepro_stub.py": "def main():\n    print('envrepro, version stub')\n"}
    return make_wheel(folder, "envrepro-stub", module, "envrepro = envrepro_stub:main")


def run_install(
    script: str, python_dir: Path, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    runner_temp, github_path = tmp_path / "temp", tmp_path / "github_path"
    runner_temp.mkdir()
    github_path.write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("PYTEST")}
    env |= {"PATH": f"{python_dir}{os.pathsep}{env.get('PATH', '')}", "RUNNER_TEMP": str(runner_temp)}
    env |= {"GITHUB_PATH": str(github_path), "ENVREPRO_SPEC": str(stub_wheel(tmp_path))}
    done = run_step(bash, script, env)
    assert github_path.read_text(encoding="utf-8") == f"{runner_temp / 'envrepro-venv' / 'bin'}\n"
    return done, runner_temp / "envrepro-venv"


def set_up_python(tmp_path: Path, old_pip: bool) -> Path:
    """A directory with `python`: this interpreter (pip >= 22.3), or a wrapper whose pip lacks --python."""
    folder = tmp_path / "setup-python"
    folder.mkdir()
    python = folder / "python"
    if old_pip:
        python.write_text(OLD_PIP.format(python=sys.executable), encoding="utf-8")
        python.chmod(0o755)
    else:
        python.symlink_to(sys.executable)
    return folder


def test_both_install_steps_are_the_same_script(install_steps: list[str]) -> None:
    assert len(install_steps) == 2
    assert install_steps[0] == install_steps[1]


@pytest.mark.parametrize("old_pip", [False, True], ids=["pip-installs-into-the-venv", "older-pip-falls-back"])
def test_the_install_step_installs_the_spec_into_its_own_venv(
    install_steps: list[str], tmp_path: Path, old_pip: bool
) -> None:
    done, venv = run_install(install_steps[0], set_up_python(tmp_path, old_pip), tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "envrepro, version stub"  # the step's own `envrepro --version`
    # With --python the venv has no pip of its own (ensurepip is the step's slowest part); without, it has.
    assert (venv / "bin" / "pip").exists() is old_pip
