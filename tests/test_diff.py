"""`diff`: environment differences grouped by how much they move numbers, each with why it matters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envrepro import snapshot
from envrepro.diff import diff

CASE = Path(__file__).parent / "cases" / "tf221-cpu-snapshot" / "envrepro.lock.json"


def env(**changes: Any) -> snapshot.Environment:
    base = snapshot.load(CASE).environment.model_dump(mode="json")
    for dotted, value in changes.items():
        node = base
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return snapshot.Environment.model_validate(base)


def test_an_environment_diffed_with_itself_is_empty():
    assert diff(env(), env()) == ()


def test_flipping_only_onednn_is_caught_as_a_result_changing_difference():
    found = diff(env(), env(env={"TF_ENABLE_ONEDNN_OPTS": "0"}))
    assert [(d.kind, d.group, d.field, d.before, d.after) for d in found] == [
        ("onednn", "breaks", "TF_ENABLE_ONEDNN_OPTS", "(absent)", "0")
    ]
    assert "oneDNN" in found[0].why
    assert found[0].source


def test_onednn_on_by_default_here_but_not_there_is_named():
    found = diff(env(), env(tensorflow__onednn_enabled=False))
    assert found[0].kind == "onednn"
    assert (found[0].before, found[0].after) == ("on", "off")


def test_keras_major_and_tensorflow_lead_the_list():
    after = env(tensorflow__version="2.15.1", tensorflow__keras_version="2.15.0", tensorflow__keras_major=2)
    kinds = [d.kind for d in diff(env(), after)]
    assert kinds[:2] == ["keras_major", "tensorflow"]


def test_python_patch_is_cosmetic_and_minor_breaks():
    patch = diff(env(), env(python__version="3.11.2"))
    assert [(d.kind, d.group) for d in patch] == [("python_patch", "cosmetic")]
    minor = diff(env(), env(python__version="3.12.1"))
    assert [(d.kind, d.group) for d in minor] == [("python_minor", "breaks")]


def test_cpu_vector_instructions_that_change_kernels_are_listed_by_name():
    base = env()
    fewer = [flag for flag in base.cpu.flags if not flag.startswith("avx512")]
    found = diff(base, env(cpu__flags=fewer))
    assert found[0].kind == "cpu_flags"
    assert "avx512f" in found[0].before
    assert found[0].after == "-"


def test_numpy_major_breaks_and_other_numeric_libraries_may_change_results():
    base = env()
    dists = [d.model_dump(mode="json") for d in base.distributions]
    for d in dists:
        if d["name"] == "numpy":
            d["version"] = "1.26.4"
        if d["name"] == "h5py":
            d["version"] = "3.10.0"
        if d["name"] == "requests":
            d["version"] = "2.0.0"
    groups = {d.field: d.group for d in diff(base, env(distributions=dists))}
    assert groups["numpy"] == "breaks"
    assert groups["h5py"] == "may"
    assert groups.get("requests", "cosmetic") == "cosmetic"


@pytest.mark.parametrize(
    ("var", "kind"),
    [
        ("TF_XLA_FLAGS", "xla"),
        ("NVIDIA_TF32_OVERRIDE", "tf32"),
        ("TF_DETERMINISTIC_OPS", "determinism"),
        ("OMP_NUM_THREADS", "numerics_env"),
    ],
)
def test_each_numerics_setting_is_classified(var, kind):
    found = diff(env(), env(env={var: "1"}))
    assert [d.kind for d in found] == [kind]


@pytest.mark.parametrize("spec", ["image:", "python:", "python:  "])
def test_an_image_or_python_with_nothing_after_the_colon_is_exit_2(cli, spec):
    result = cli("diff", str(CASE), spec)
    assert result.exit_code == 2
    kind = spec.split(":")[0]
    assert result.error_lines == [f"error: {spec!r}: nothing after '{kind}:' " + (
        "(expected an image reference, e.g. image:myteam/model:1.0)" if kind == "image"
        else "(expected an interpreter or an environment directory)")]  # fmt: skip
    assert "hint: diff takes a snapshot file, image:NAME:TAG or python:PATH" in result.stderr
    assert result.stdout == ""


def test_a_snapshot_diffed_with_itself_on_the_command_line_exits_0(cli):
    result = cli("diff", str(CASE), str(CASE), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["differences"] == []
