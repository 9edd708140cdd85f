"""Real target environments for the tests: virtualenvs with a given TensorFlow, created once and reused.

usage: python tests/support/envs.py [NAME ...]   (creates them ahead of the tests; .ci/run does this)
They live in $ENVREPRO_TEST_ENVS (default ~/.cache/envrepro/test-envs); a marker file records that the
install finished, so an interrupted install is redone instead of reused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ENVS: dict[str, tuple[str, ...]] = {
    # the current TensorFlow (Keras 3) and the last Keras-2 TensorFlow, as DESIGN.md describes
    "tf-2.21.0": ("tensorflow-cpu==2.21.0",),
    "tf-2.15.1": ("tensorflow-cpu==2.15.1",),
    # no TensorFlow at all: a plain environment for fast tests of the probe
    "plain": (),
}


def root() -> Path:
    return Path(os.environ.get("ENVREPRO_TEST_ENVS", Path.home() / ".cache" / "envrepro" / "test-envs"))


def ensure(name: str) -> Path:
    """Return the interpreter of test environment `name`, creating it if needed."""
    env_dir = root() / name
    python = env_dir / "bin" / "python"
    marker = env_dir / ".envrepro-ready"
    wanted = "\n".join(ENVS[name])
    if marker.exists() and marker.read_text() == wanted:
        return python
    venv.EnvBuilder(clear=True, with_pip=True).create(env_dir)
    if ENVS[name]:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *ENVS[name]], check=True)
    marker.write_text(wanted)
    return python


if __name__ == "__main__":
    for env_name in sys.argv[1:] or list(ENVS):
        print(f"{env_name}: {ensure(env_name)}", flush=True)
