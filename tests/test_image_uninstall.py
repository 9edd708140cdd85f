"""Bisect's variant uninstalls with envrepro/image_uninstall.py, piped to the image's Python by the RUN
the variant's Dockerfile holds. Run here exactly as rendered (the venv's path swapped for a real venv's),
it leaves the tree `pip uninstall --yes` leaves: real wheels installed by pip into two venvs, one
uninstalled by pip, the other by the rendered RUN."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from wheels import make_wheel

from envrepro.errors import UnsafeValueError
from envrepro.grammar import dockerfile_program
from envrepro.render import VENV
from envrepro.variant_build import VariantPlan, render_variant

# (distribution, its files): a package with a subpackage and data, a top-level module, a console script,
# and a namespace directory the two share (pip leaves it while the other still has files there)
WHEELS = {
    "demo-pkg": {
        "demo_pkg/__init__.py": "from demo_pkg.core import VALUE\n",
        "demo_pkg/core.py": "VALUE = 1\n\ndef main():\n    print(VALUE)\n",
        "demo_pkg/sub/__init__.py": "",
        "demo_pkg/sub/data.txt": "data\n",
        "demo_top.py": "TOP = 1\n",
        "shared_ns/demo_part.py": "PART = 1\n",
    },
    "keep-me": {"keep_me.py": "KEPT = 1\n", "shared_ns/keep_part.py": "PART = 2\n"},
}
SCRIPTS = {"demo-pkg": "demo-cli = demo_pkg.core:main"}


def wheel(out: Path, name: str) -> Path:
    """A py3-none-any wheel of `name` 1.0 with WHEELS[name] and a RECORD of sha256 hashes."""
    return make_wheel(out, name, WHEELS[name], SCRIPTS.get(name))


def venv_with_wheels(root: Path, wheels: list[Path]) -> Path:
    """A venv (no pip of its own) with the wheels installed by this pip, compiled as pip does."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    install = ["install", "--quiet", "--no-index", "--no-deps", *map(str, wheels)]
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), *install], check=True)
    return python


def tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) + ("/" if path.is_dir() else "") for path in root.rglob("*"))


def rendered_run(python: Path, names: tuple[str, ...]) -> str:
    """The variant's uninstall RUN as the shell gets it, for the venv of `python` instead of the image's."""
    plan = VariantPlan(install=(), remove=names, lock_digest="d" * 64)
    dockerfile = dict(render_variant("envrepro-test/tf221:cpu", "sha256:" + "1" * 64, plan).files)[
        "Dockerfile"
    ]
    joined = dockerfile.decode().replace("\\\n", "")  # the Dockerfile parser's line continuation
    (run,) = [line.removeprefix("RUN ") for line in joined.splitlines() if line.startswith("RUN ")]
    return run.replace(f"{VENV}/bin/python", str(python))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("wheels")
    return [wheel(out, name) for name in WHEELS]


def test_the_variants_uninstall_leaves_the_tree_pip_uninstall_leaves(
    wheels: list[Path], tmp_path: Path
) -> None:
    by_pip = venv_with_wheels(tmp_path / "pip", wheels)
    ours = venv_with_wheels(tmp_path / "ours", wheels)
    installed = tree(tmp_path / "ours")
    assert any(p.endswith("core.cpython-{}{}.pyc".format(*sys.version_info[:2])) for p in installed)
    assert "bin/demo-cli" in installed

    subprocess.run([sys.executable, "-m", "pip", "--python", str(by_pip), "uninstall", "--yes", "--quiet",
                    "demo-pkg"], check=True)  # fmt: skip
    done = subprocess.run(["sh", "-c", rendered_run(ours, ("demo_pkg", "not-installed"))],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "uninstalled demo-pkg 1.0\n"  # its own name, asked for as demo_pkg
    assert "skipping not-installed: it is not installed" in done.stderr

    left = tree(tmp_path / "ours")
    assert left == tree(tmp_path / "pip")
    assert not any("demo" in path for path in left)
    assert "lib/python{}.{}/site-packages/shared_ns/keep_part.py".format(*sys.version_info[:2]) in left
    kept = subprocess.run([ours, "-c", "import keep_me, shared_ns.keep_part; print(keep_me.KEPT)"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert kept.stdout == "1\n"


def test_a_record_entry_outside_the_environment_is_not_removed(wheels: list[Path], tmp_path: Path) -> None:
    python = venv_with_wheels(tmp_path / "venv", wheels[:1])
    outside = tmp_path / "outside.txt"
    outside.write_text("not the environment's\n", encoding="utf-8")
    (record,) = (tmp_path / "venv").rglob("demo_pkg-1.0.dist-info/RECORD")
    site = record.parent.parent
    with record.open("a", encoding="utf-8") as handle:
        handle.write(f"{os.path.relpath(outside, site)},,\n")
    done = subprocess.run(["sh", "-c", rendered_run(python, ("demo-pkg",))],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert outside.read_text(encoding="utf-8") == "not the environment's\n"
    assert f"not removing {outside}: outside the environment" in done.stderr
    assert not (site / "demo_pkg").exists()


def test_a_program_line_that_is_not_printable_ascii_is_refused() -> None:
    with pytest.raises(UnsafeValueError):
        dockerfile_program("print('\u00e9')\n")
    with pytest.raises(UnsafeValueError):
        dockerfile_program("x = 1\x1b[2J\n")
    assert (
        dockerfile_program("print('a')\n\n# b\n")
        == "printf '%s\\n' \\\n    'print('\\''a'\\'')' \\\n    '# b' \\\n"
    )
