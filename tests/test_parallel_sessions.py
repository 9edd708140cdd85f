"""Two test sessions at once on one engine both pass: each looks only at what it created.

The tests that look at the engine's state (the containers a signal, a timeout or Ctrl-C must have removed,
the images a session's teardown removes, the build steps a signal stops) run in two fresh `pytest`
sessions side by side on this engine. Each session has its own run id (tests/support/owned.py), its own
image tags and its own build markers; before they had them, the second session's containers made the
first one's "no container is left" assertions fail. This session's CPU image is built first, so the two
start from the same warm build cache; started together, they overlap for all of their run. A session
that runs this test does not run those tests itself (conftest.py): here they run twice, side by side,
and a failure of any of them fails this test with the session's log. The models and the snapshot (host
files, no engine state) are this session's, handed to both read-only: each session still builds its own
image under its own tags and runs its own containers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENGINE_STATE_TESTS, TF_MODELS_FROM, TF_SNAPSHOT_FROM

pytestmark = [pytest.mark.integration, pytest.mark.docker]

ROOT = Path(__file__).resolve().parent.parent


def test_two_sessions_side_by_side_on_one_engine_both_pass(
    cpu_build: object, tf_models: Path, tf_snapshot: Path, tmp_path: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "ENVREPRO_RUN_ID"}
    env |= {TF_MODELS_FROM: str(tf_models), TF_SNAPSHOT_FROM: str(tf_snapshot)}  # host files, read only
    sessions = []
    for name in ("first", "second"):
        log = (tmp_path / f"{name}.log").open("w", encoding="utf-8")
        argv = [sys.executable, "-m", "pytest", "-q", "--basetemp", str(tmp_path / name), "--durations=0"]
        sessions.append((subprocess.Popen([*argv, *ENGINE_STATE_TESTS], cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT), log))  # fmt: skip
    for process, log in sessions:
        process.wait()
        log.close()
    logs = [(tmp_path / f"{name}.log").read_text(encoding="utf-8") for name in ("first", "second")]
    for (process, _), text in zip(sessions, logs, strict=True):
        assert process.returncode == 0, text[-4000:]
        summary = text.strip().splitlines()[-1]  # none skipped, none failed:
        assert re.fullmatch(r"=* ?\d+ passed(, \d+ warnings?)? in [0-9.]+s.*", summary), summary
