"""The package keeps the shape DESIGN.md and STYLE.md ask for: one module per idea, short functions, one
error home (envrepro/errors/, a module per stage), one place for Docker and one for subprocesses, no test
doubles shipped in the wheel."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "envrepro"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40
MAX_MEDIAN_FUNCTION_LINES = 12


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PACKAGE.rglob("*.py"))]


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _length(node: ast.AST) -> int:
    return int(getattr(node, "end_lineno", 0)) - int(getattr(node, "lineno", 0)) + 1


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path, _ in _modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_functions_are_short_enough_to_read_at_a_glance() -> None:
    lengths = {
        f"{path.relative_to(PACKAGE)}:{fn.lineno} {fn.name}": _length(fn)
        for path, tree in _modules()
        for fn in _functions(tree)
    }
    assert {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES} == {}
    assert statistics.median(lengths.values()) <= MAX_MEDIAN_FUNCTION_LINES


def test_every_exception_class_lives_in_the_errors_package() -> None:
    elsewhere = [
        f"{path.relative_to(PACKAGE)}:{node.name}"
        for path, tree in _modules()
        if "errors" not in path.parts and "probe" not in path.parts  # the probe is stdlib-only, standalone
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception")) for b in node.bases)
    ]
    assert elsewhere == []


def test_only_engine_imports_docker_and_only_proc_starts_subprocesses() -> None:
    docker_users = [p.name for p, tree in _modules() if "docker" in _imports(tree)]
    subprocess_users = [
        str(p.relative_to(PACKAGE)) for p, tree in _modules() if "subprocess" in _imports(tree)
    ]
    assert docker_users == ["connect.py", "engine.py"]  # connect builds the SDK client engine.py uses
    assert [p for p in subprocess_users if not p.startswith("probe/")] == ["proc.py"]


def test_no_test_double_ships_in_the_package() -> None:
    names = {node.name for _, tree in _modules() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    assert not {n for n in names if n.startswith(("Fake", "Mock", "Stub", "Dummy"))}
