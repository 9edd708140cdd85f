"""Bisect's pure parts: delta debugging on synthetic oracles, the groups of two real snapshots, and the
report's renderers (80 columns, schema, Markdown)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import replace

import jsonschema
import pytest
from conftest import CASES
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console, RenderableType

from envrepro import snapshot
from envrepro.bisect import BisectResult, Trial
from envrepro.bisect_report import BisectReport, bisect_json, bisect_markdown, bisect_table, to_report
from envrepro.ddmin import ddmin, split
from envrepro.errors import LockError, UnsafeValueError
from envrepro.target import Lock, LockedRequirement
from envrepro.variant_build import (
    VariantPlan,
    files_tag,
    plan_variant,
    render_files,
    render_variant,
    variant_tag,
)
from envrepro.variants import Change, Group, env_override, groups, package_pins

TF221 = snapshot.load(CASES / "tf221-cpu-snapshot" / "envrepro.lock.json").environment
TF212 = snapshot.load(CASES / "tf212-gpu-snapshot" / "envrepro.lock.json").environment


def counting(oracle):  # type: ignore[no-untyped-def]
    asked: list[frozenset[int]] = []

    def test(subset: tuple[int, ...]) -> bool | None:
        asked.append(frozenset(subset))
        return oracle(frozenset(subset))

    return test, asked


# ---------------------------------------------------------------------------------------------------------
# ddmin


def test_one_cause_among_eight_is_found_alone_in_few_tests() -> None:
    test, asked = counting(lambda s: 5 in s)
    assert ddmin(range(8), test) == (5,)
    assert len(asked) <= 2 * math.ceil(math.log2(8)) + 1
    assert len(asked) == len(set(asked))  # no subset is asked twice


def test_two_causes_that_must_move_together_are_both_in_the_minimal_set() -> None:
    test, _ = counting(lambda s: {1, 6} <= s)
    assert ddmin(range(8), test) == (1, 6)


def test_nothing_restores_parity_gives_none() -> None:
    test, asked = counting(lambda s: False)
    assert ddmin(range(5), test) is None
    assert asked == [frozenset(range(5))]


def test_a_subset_that_cannot_be_tried_counts_as_not_restoring() -> None:
    # 2 cannot be installed without 3 (unresolved); only {2, 3} restores parity
    def oracle(s: frozenset[int]) -> bool | None:
        if 2 in s and 3 not in s:
            return None
        return {2, 3} <= s

    test, _ = counting(oracle)
    assert ddmin(range(6), test) == (2, 3)


@given(
    st.integers(2, 12).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), min_size=1)))
)
def test_a_conjunction_of_causes_is_found_exactly(case: tuple[int, set[int]]) -> None:
    size, causes = case
    found = ddmin(tuple(range(size)), lambda s: set(causes) <= set(s))
    assert found is not None
    assert set(found) == causes


@given(st.lists(st.integers(), max_size=20), st.integers(1, 8))
def test_split_keeps_every_item_in_order_in_near_equal_chunks(items: list[int], parts: int) -> None:
    chunks = split(tuple(items), parts)
    assert [x for chunk in chunks for x in chunk] == items
    if chunks:
        assert max(map(len, chunks)) - min(map(len, chunks)) <= 1


# ---------------------------------------------------------------------------------------------------------
# groups


def test_groups_of_a_tf212_training_record_against_a_tf221_image() -> None:
    found = {g.key: g for g in groups(TF212, TF221)}
    assert found["TF_CUDNN_DETERMINISTIC"].kind == "env"
    assert found["TF_CUDNN_DETERMINISTIC"].changes == (Change("TF_CUDNN_DETERMINISTIC", None, "1"),)
    tf = {c.name for c in found["tensorflow"].changes}
    assert {"tensorflow", "keras", "tensorboard", "ml-dtypes", "tensorflow-estimator"} <= tf
    assert "numpy" not in tf
    assert [c.name for c in found["numpy"].changes] == ["numpy"]
    for other in ("protobuf", "scipy", "wrapt"):
        assert [c.name for c in found[other].changes] == [other]
    assert "TF_CPP_MIN_LOG_LEVEL" not in found  # envrepro sets it in every run itself
    keys = list(found)
    assert keys.index("TF_CUDNN_DETERMINISTIC") < keys.index("tensorflow") < keys.index("numpy")


def test_same_environment_has_no_groups() -> None:
    assert groups(TF221, TF221) == ()


def test_a_variant_sets_variables_unsets_absent_ones_and_pins_training_versions() -> None:
    env_on = Group("A", "env", (Change("A", "0", "1"),))
    env_off = Group("B", "env", (Change("B", "0", None),))
    pkgs = Group("numpy", "packages", (Change("numpy", "2.1.0", "1.26.4"),))
    assert env_override([env_on, env_off, pkgs]) == {"A": "1", "B": None}
    assert package_pins([env_on, pkgs]) == {"numpy": "1.26.4"}


# ---------------------------------------------------------------------------------------------------------
# report


def _baseline(max_abs: float, passed: bool):  # type: ignore[no-untyped-def]
    from test_report_render import output

    from envrepro.parity_model import ParityReport

    return ParityReport(
        verdict="pass" if passed else "fail", summary="", model="models/cnn_with_a_long_name.keras",
        model_format="keras", image="envrepro-test/tf221:onednn-off", snapshot="envrepro.snapshot.json",
        snapshot_digest="0" * 64, samples=32, model_mismatch=False,
        outputs=(output("probabilities", passed=passed, max_abs_error=max_abs),), fingerprints=(),
        differences=(), likely_causes=(), warnings=(), timings={},
    )  # fmt: skip


TF_GROUP = Group(
    "tensorflow",
    "packages",
    (Change("keras", "3.13.0", "2.15.0"), Change("tensorflow", "2.21.0", "2.15.1"),
     Change("tensorboard", "2.21.0", "2.15.2"), Change("tensorflow-io-gcs-filesystem", "0.37.1", "0.34.0")),
)  # fmt: skip
ONEDNN = Group("TF_ENABLE_ONEDNN_OPTS", "env", (Change("TF_ENABLE_ONEDNN_OPTS", "0", None),))


def a_result() -> BisectResult:
    trials = (
        Trial(("TF_ENABLE_ONEDNN_OPTS",), ONEDNN.describe(), "img", False, False, 3.2e-5),
        Trial(("tensorflow",), TF_GROUP.describe(), "envrepro-variant:0123456789abcdef", True, False, 4.5e-8),
        Trial(("TF_ENABLE_ONEDNN_OPTS", "tensorflow"), "both", "envrepro-variant:0123456789abcdef", False,
              True, 0.0),
        Trial(("numpy",), "numpy 2.1.0 → 1.26.4", "", False, None, math.inf,
              "not tried: --max-builds 1 reached"),
    )  # fmt: skip
    return BisectResult(_baseline(4.5e-8, False), (ONEDNN, TF_GROUP), trials, (ONEDNN, TF_GROUP), 1, 8)


def render(renderable: RenderableType) -> str:
    console = Console(width=80, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115, PTH123
    console.print(renderable)
    return console.export_text()


def assert_fits(text: str, words: Iterable[str]) -> None:
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert [w for w in words if not any(w in line for line in text.splitlines())] == []


def test_verdict_names_the_minimal_cause_with_its_measured_errors() -> None:
    report = to_report(a_result())
    assert report.verdict == "cause"
    assert report.summary.startswith(
        "Returning TF_ENABLE_ONEDNN_OPTS 0 → (absent) with keras 3.13.0 → 2.15.0, tensorflow 2.21.0 → 2.15.1"
    )
    assert report.summary.endswith("restores parity (max abs 4.5e-08 → 0)")


def test_the_table_fits_80_columns_with_every_variant_and_number_whole() -> None:
    text = render(bisect_table(to_report(a_result())))
    assert_fits(text, ["3.2e-05", "4.5e-08", "not-run", "2.15.1", "restores", "tensorflow-io-gcs-filesystem"])


def test_the_json_validates_against_its_schema_and_an_unmeasured_variant_is_null() -> None:
    data = json.loads(bisect_json(to_report(a_result())))
    jsonschema.validate(data, BisectReport.model_json_schema())
    assert data["trials"][3]["max_abs_error"] is None
    assert data["cause"] == ["TF_ENABLE_ONEDNN_OPTS", "tensorflow"]


def test_markdown_has_a_row_per_variant_and_pipes_cannot_break_it() -> None:
    result = a_result()
    odd = Trial(("x|y",), "x|y 1 → 2", "", False, False, 1.0)
    text = bisect_markdown(to_report(BisectResult(result.baseline, result.groups, (*result.trials, odd))))
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert len(rows) == 5
    assert all(line.replace("\\|", "").count("|") == 6 for line in rows)


@pytest.mark.parametrize(
    ("result", "verdict", "words"),
    [
        (BisectResult(_baseline(0.0, True), ()), "pass", "nothing to bisect"),
        (BisectResult(_baseline(1e-3, False), ()), "no-cause", "nothing bisect can move"),
        (BisectResult(_baseline(1e-3, False), (ONEDNN,), complete=False, max_builds=2), "incomplete",
         "--max-builds 2"),
        (BisectResult(_baseline(1e-3, False), (ONEDNN,)), "no-cause", "does not restore parity"),
    ],
)  # fmt: skip
def test_each_verdict_says_what_happened(result: BisectResult, verdict: str, words: str) -> None:
    report = to_report(result)
    assert report.verdict == verdict
    assert words in report.summary


NUMPY = LockedRequirement("numpy", "1.26.4", ("sha256:" + "a" * 64,))
BASE_ID = "sha256:" + "1" * 64


def variant_files(plan: VariantPlan, image_id: str = BASE_ID) -> dict[str, str]:
    """The variant's build files, and its files image's (under files/)."""
    image = "envrepro-test/tf221:cpu"
    files = {name: data.decode() for name, data in render_variant(image, image_id, plan).files}
    if plan.install:
        files.update({f"files/{n}": data.decode() for n, data in render_files(image, plan).files})
    return files


def words(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").split())


def test_the_variant_installs_only_the_changed_distributions_and_pip_configuration_stays_in_the_builder() -> (
    None
):
    plan = VariantPlan(install=(NUMPY,), remove=("numpy", "optree"), lock_digest="d" * 64)
    files = variant_files(plan)
    # the files image: a builder stage FROM the image installs the hashed entries; FROM scratch the prefix
    assert files["files/variant.lock.txt"] == "numpy==1.26.4 \\\n    --hash=sha256:" + "a" * 64 + "\n"
    builder, prefix = files["files/Dockerfile"].split("\nFROM scratch\n")
    assert "FROM envrepro-test/tf221:cpu AS builder\nUSER root" in builder
    assert (
        "COPY pip/ /tmp/envrepro-pip/" in builder and "PIP_CONFIG_FILE=/tmp/envrepro-pip/pip.conf" in builder
    )
    assert "pip install --no-cache-dir --require-hashes --no-deps --ignore-installed" in words(builder)
    assert "--prefix /tmp/envrepro-variant/opt/venv -r /tmp/envrepro/variant.lock.txt" in words(builder)
    assert words(prefix).startswith("COPY --from=builder /tmp/envrepro-variant/opt/venv/ / LABEL")
    # the variant: the image, its versions uninstalled, the files copied in; no pip configuration
    variant = files["Dockerfile"]
    assert "Dockerfile" in files and "variant.lock.txt" not in files  # the variant's context: one file
    for secret_path in ("pip/", "envrepro-pip", "PIP_CONFIG_FILE", "pip.conf", "index-url", "pip install"):
        assert secret_path not in variant
    assert variant.count("\nFROM ") == 1 and "\nFROM envrepro-test/tf221:cpu\nUSER root\n" in variant
    assert words(variant).count("| /opt/venv/bin/python -I - numpy optree") == 1  # image_uninstall.py
    assert f"COPY --from={files_tag(plan)} / /opt/venv/" in variant
    assert variant.index("RUN printf") < variant.index("COPY --from=")
    assert variant.rstrip().endswith("USER 10001:10001")


def test_a_variant_that_only_uninstalls_has_no_files_image_and_one_that_only_adds_uninstalls_nothing() -> (
    None
):
    only_remove = variant_files(VariantPlan(install=(), remove=("optree",), lock_digest="d" * 64))
    assert list(only_remove) == ["Dockerfile"] and "COPY" not in only_remove["Dockerfile"]
    only_add = variant_files(VariantPlan(install=(NUMPY,), remove=(), lock_digest="d" * 64))["Dockerfile"]
    assert "RUN" not in only_add and "COPY --from=envrepro-variant-files:" in only_add


@given(st.text(min_size=1, max_size=40))
def test_every_value_in_the_variant_dockerfiles_is_escaped_or_refused(hostile: str) -> None:
    plain = variant_files(VariantPlan(install=(NUMPY,), remove=("numpy",), lock_digest="d" * 64))
    odd = variant_files(VariantPlan((NUMPY,), ("numpy",), hostile), image_id=hostile)
    for name in ("Dockerfile", "files/Dockerfile"):  # a label value cannot add a line (an instruction)
        assert odd[name].count("\n") == plain[name].count("\n")
    with pytest.raises(UnsafeValueError):
        variant_files(VariantPlan((NUMPY,), ("numpy", "-" + hostile), "d"))  # never a pip option
    with pytest.raises(UnsafeValueError):
        variant_files(VariantPlan((NUMPY,), ("numpy", "x\nRUN " + hostile), "d"))


def test_the_variant_tag_is_its_content_and_the_files_tag_does_not_depend_on_the_image() -> None:
    plan = VariantPlan(install=(NUMPY,), remove=("numpy",), lock_digest="d" * 64)
    other = VariantPlan(install=(NUMPY,), remove=("numpy", "optree"), lock_digest="d" * 64)
    tag = variant_tag(BASE_ID, render_variant("i", BASE_ID, plan))
    assert tag == variant_tag(BASE_ID, render_variant("i", BASE_ID, plan))
    assert tag != variant_tag("sha256:2", render_variant("i", BASE_ID, plan))
    assert tag != variant_tag(BASE_ID, render_variant("i", BASE_ID, other))
    assert files_tag(plan) == files_tag(other)  # the same distributions installed, whatever is removed
    # another set of groups whose lock differs elsewhere but changes the same: one variant, one files image
    elsewhere = VariantPlan(install=(NUMPY,), remove=("numpy",), lock_digest="e" * 64)
    assert tag == variant_tag(BASE_ID, render_variant("i", BASE_ID, elsewhere))
    assert files_tag(plan) == files_tag(VariantPlan(install=(NUMPY,), remove=(), lock_digest="e" * 64))
    assert files_tag(plan) != files_tag(VariantPlan((NUMPY,), (), "d" * 64, platform="python 3.12"))
    assert files_tag(plan) != files_tag(VariantPlan((replace(NUMPY, version="1.26.3"),), (), "d" * 64))


def test_the_plan_installs_the_locked_training_pins_and_uninstalls_the_images_versions() -> None:
    lock = Lock(text="", requirements=(NUMPY, LockedRequirement("h5py", "3.14.0", ("sha256:b",))),
                input_digest="d")  # fmt: skip
    plan = plan_variant(lock, {"numpy": "1.26.4"}, ("optree",), {"numpy": "2.1.0", "h5py": "3.14.0"})
    assert plan == VariantPlan(install=(NUMPY,), remove=("numpy", "optree"), lock_digest="d")
    new_only = plan_variant(lock, {"numpy": "1.26.4"}, (), {"h5py": "3.14.0"})
    assert new_only.remove == ()  # training had it, the image not: nothing to uninstall
    with pytest.raises(LockError):
        plan_variant(lock, {"numpy": "1.26.3"}, (), {})


def test_what_the_resolver_adds_for_the_training_pins_is_installed_too_but_never_the_installers() -> None:
    werkzeug, setuptools = (
        LockedRequirement(n, v, ("sha256:c",)) for n, v in (("werkzeug", "3.1"), ("setuptools", "80.0"))
    )
    lock = Lock(text="", requirements=(NUMPY, setuptools, werkzeug), input_digest="d")
    plan = plan_variant(lock, {"numpy": "1.26.4"}, (), {"numpy": "2.1.0", "setuptools": "65.5.0"})
    assert plan.install == (NUMPY, werkzeug) and plan.remove == ("numpy",)


def test_a_companion_only_in_the_image_joins_its_group_and_is_uninstalled_a_lone_one_is_no_group() -> None:
    from envrepro.variants import package_groups, package_removals

    training = {"tensorflow": "2.15.1", "tensorflow-estimator": "2.15.0", "numpy": "1.26.4"}
    image = {"tensorflow": "2.21.0", "tensorboard-data-server": "0.7.2", "optree": "0.17", "numpy": "1.26.4"}
    found = {g.key: g for g in package_groups(training, image)}
    assert list(found) == ["tensorflow"]
    assert set(found["tensorflow"].changes) == {
        Change("tensorboard-data-server", "0.7.2", None),
        Change("tensorflow", "2.21.0", "2.15.1"),
        Change("tensorflow-estimator", None, "2.15.0"),
    }
    assert package_removals(found.values()) == ("tensorboard-data-server",)
    assert package_pins(found.values()) == {"tensorflow": "2.15.1", "tensorflow-estimator": "2.15.0"}


def test_the_installers_are_no_group() -> None:
    from envrepro.variants import package_groups

    found = package_groups({"pip": "23.2.1", "setuptools": "65.5.0", "h5py": "3.14.0"}, {"pip": "25.0"})
    assert [g.key for g in found] == ["h5py"]
