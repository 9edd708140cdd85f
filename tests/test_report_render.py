"""Every human-facing table fits 80 columns without cutting a name or a number, and Markdown output is
read back by a CommonMark parser (markdown-it-py, with GitHub's table extension) as the tables it claims."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.console import Console, RenderableType

from envrepro import snapshot
from envrepro.diff import ABSENT, diff
from envrepro.parity_model import Cause, EnvironmentDifference, FingerprintCheck, OutputResult, ParityReport
from envrepro.report import (
    differences_markdown,
    differences_table,
    parity_markdown,
    parity_table,
    snapshot_summary,
)

CASES = Path(__file__).parent / "cases"
TRAINING = snapshot.load(CASES / "tf221-cpu-snapshot" / "envrepro.lock.json")
MACOS = snapshot.load(CASES / "macos-snapshot" / "envrepro.lock.json")
WIDTH = 80
LONG_NAME = "probabilities_for_each_class_of_the_classifier_head"


def render(renderable: RenderableType) -> str:
    console = Console(width=WIDTH, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115, PTH123
    console.print(renderable)
    return console.export_text()


def assert_fits_uncut(text: str, words: Iterable[str]) -> None:
    """No line wider than 80, no ellipsis, and every word (a name, a number) whole on one line."""
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= WIDTH
    lines = text.splitlines()
    missing = [word for word in words if not any(word in line for line in lines)]
    assert missing == []


def output(name: str, passed: bool = True, reason: str = "", **numbers: Any) -> OutputResult:
    values: dict[str, Any] = {
        "max_abs_error": -3.2109e-05,
        "mean_abs_error": 3.3333e-09,
        "max_rel_error": 2.2222e-06,
        "min_passing_atol": 1.2345e-07,
        "max_ulp": 2139095040,
        "argmax_agreement": 0.99609375,
    }
    values.update(numbers)
    return OutputResult(
        name=name, passed=passed, reason=reason, reference_shape=(256, 1000), candidate_shape=(256, 1000),
        reference_dtype="float32", candidate_dtype="float32", atol=1e-6, rtol=1e-5, rel_error_floor=1e-30,
        mismatched_elements=17, elements=256000, reference_nan=0, candidate_nan=0, reference_inf=0,
        candidate_inf=0, topk_agreement=None, top_k=None, **values,
    )  # fmt: skip


REASON = "max abs error 3.2e-05 > atol 1e-06 + rtol 1e-05 * |reference| at 17 of 256000 elements"
REPORT = ParityReport(
    verdict="fail",
    summary="FAIL: 1 of 2 outputs differ beyond tolerance",
    model="models/production/classifier_v2.keras",
    model_format="keras",
    image="registry.example.com/team/envrepro:0123456789abcdef",
    snapshot="envrepro.lock.json",
    snapshot_digest="ab" * 32,
    samples=256,
    model_mismatch=False,
    outputs=(output(LONG_NAME), output("logits", False, REASON, max_abs_error=-1.5e-3, max_ulp=None)),
    fingerprints=(FingerprintCheck(what="weights", reference="c" * 64, candidate="c" * 64, same=True),),
    differences=(
        EnvironmentDifference(
            kind="onednn",
            group="breaks",
            field="TF_ENABLE_ONEDNN_OPTS",
            training=ABSENT,
            image="0",
            why="oneDNN | reorders sums",
            source="https://example.org",
        ),
    ),
    likely_causes=(
        Cause(cause="oneDNN setting differs", evidence="TF_ENABLE_ONEDNN_OPTS unset, 0 in the image"),
    ),
    warnings=(),
    timings={},
    stage="both",
    preprocess_function="prep.py:preprocess",
    preprocessing=(output("preprocessed.0", max_ulp=None, argmax_agreement=None),),
)


def numbers_of(out: OutputResult) -> list[str]:
    found = [
        format(v, ".3g") for v in (out.max_abs_error, out.mean_abs_error, out.max_rel_error) if v is not None
    ]
    found += [format(out.min_passing_atol, ".3g")] if out.min_passing_atol is not None else []
    found += [str(out.max_ulp)] if out.max_ulp is not None else []
    found += [format(out.argmax_agreement, ".1%")] if out.argmax_agreement is not None else []
    return found


def test_parity_and_preprocessing_tables_fit_80_columns_with_every_name_and_number_whole():
    text = render(parity_table(REPORT))
    outputs = (*REPORT.outputs, *REPORT.preprocessing)
    words = [out.name for out in outputs] + [n for out in outputs for n in numbers_of(out)] + ["256x1000"]
    assert_fits_uncut(text, words)
    assert "FAIL" in text
    assert "pass" in text


def test_the_diff_table_fits_80_columns_and_keeps_every_field_and_value_whole():
    differences = diff(TRAINING.environment, MACOS.environment)
    text = render(differences_table(differences, "training.json", "macos.json", cosmetic=True))
    words = [word for d in differences for value in (d.field, d.before, d.after) for word in value.split()]
    words += [word for d in differences for word in d.why.split()]
    assert_fits_uncut(text, words)


def without_tensorflow(env: snapshot.Environment) -> snapshot.Environment:
    kept = tuple(d for d in env.distributions if d.key not in {"tensorflow", "tensorflow-cpu", "keras"})
    return env.model_copy(update={"tensorflow": None, "distributions": kept})


def test_diff_against_an_environment_without_tensorflow_shows_keras_absent():
    differences = diff(TRAINING.environment, without_tensorflow(TRAINING.environment))
    keras = [d for d in differences if d.field == "keras"]
    assert [(d.before, d.after, d.group) for d in keras] == [("3.15.1", ABSENT, "breaks")]
    text = render(differences_table(differences, "a", "b", cosmetic=False))
    assert any("keras" in line and ABSENT in line for line in text.splitlines())
    back = diff(without_tensorflow(TRAINING.environment), TRAINING.environment)
    assert [(d.before, d.after) for d in back if d.field == "keras"] == [(ABSENT, "3.15.1")]


MODEL = {
    "path": "experiments/2026-11/run-42/checkpoints/classifier_with_a_rather_long_name.keras",
    "format": "keras",
    "file_sha256": "5" * 64,
    "saved_keras_version": "3.15.1",
    "architecture_sha256": "7" * 64,
    "weights_sha256": "83e6f12d638b" + "0" * 52,
    "weights": [{"name": "conv2d/kernel", "shape": [3, 3, 1, 4], "dtype": "float32", "sha256": "1" * 64}],
    "inputs": [{"name": "image", "shape": [None, 16, 16, 1], "dtype": "float32"}],
    "outputs": [{"name": LONG_NAME, "shape": [None, 1000], "dtype": "float32"}],
    "input_preprocessing": [],
    "reference": {
        "file": "envrepro.lock.ref/classifier_with_a_rather_long_name.keras-5008d368770a.npz",
        "arrays_sha256": {"output.0": "2" * 64},
        "samples": 256,
        "seed": 0,
        "inputs_from": "generated",
    },
}
FAILED = {
    "path": "custom_seq.keras",
    "error": {"kind": "custom_objects", "detail": "needs Scale; pass --custom-objects"},
}


def test_show_fits_80_columns_with_models_paths_and_shapes_whole():
    snap = TRAINING.model_copy(
        update={
            "models": (
                snapshot.ModelRecord.model_validate(MODEL),
                snapshot.ModelRecord.model_validate(FAILED),
            )
        }
    )
    text = render(snapshot_summary(snap, "envrepro.lock.json"))
    words = [MODEL["path"], "image (None, 16, 16, 1) float32", LONG_NAME, "83e6f12d638b", "custom_seq.keras"]
    words += [str(MODEL["reference"]["file"]), "256 samples", "custom_objects"]  # type: ignore[index]
    assert_fits_uncut(text, words)


# ---------------------------------------------------------------------------------------------------------
# Markdown, read back by a CommonMark parser


def parse(markdown: str) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(markdown)


def headings(tokens: list[Token]) -> list[tuple[str, str]]:
    return [(tok.tag, tokens[i + 1].content) for i, tok in enumerate(tokens) if tok.type == "heading_open"]


def tables(tokens: list[Token]) -> list[list[list[str]]]:
    """Each table as rows of cell texts (header row first), as a renderer would show them."""
    found: list[list[list[str]]] = []
    cell = False
    for tok in tokens:
        if tok.type == "table_open":
            found.append([])
        elif tok.type == "tr_open":
            found[-1].append([])
        elif tok.type in ("th_open", "td_open"):
            cell = True
        elif tok.type == "inline" and cell:
            found[-1][-1].append(_plain(tok))
            cell = False
    return found


def _plain(inline: Token) -> str:
    return "".join(child.content for child in inline.children or [] if child.type in ("text", "code_inline"))


def test_parity_markdown_parses_to_its_headings_and_tables():
    tokens = parse(parity_markdown(REPORT))
    assert [tag for tag, _ in headings(tokens)] == ["h2", "h3", "h3", "h3", "h3"]
    assert "models/production/classifier_v2.keras" in headings(tokens)[0][1]
    pre, model, fingerprints, env = tables(tokens)
    assert [len(pre), len(model), len(fingerprints), len(env)] == [2, 3, 2, 2]
    assert all(len(row) == 10 for row in pre + model)
    assert [row[0] for row in model[1:]] == [LONG_NAME, "logits"]
    assert model[2][2] == "-0.0015"
    assert model[2][9].endswith(REASON)  # the pipes inside the reason stay inside its cell
    assert env[1] == ["breaks", "TF_ENABLE_ONEDNN_OPTS", ABSENT, "0"]


def test_diff_markdown_parses_to_one_table_per_group_with_a_cell_per_column():
    differences = diff(TRAINING.environment, MACOS.environment)
    tokens = parse(differences_markdown(differences, "training.json", "macos|weird.json"))
    groups = {d.group for d in differences}
    assert len(headings(tokens)) == 1 + len(groups)
    parsed = tables(tokens)
    assert len(parsed) == len(groups)
    assert parsed[0][0] == ["what", "training.json", "macos|weird.json", "why it matters"]
    rows = [row for table in parsed for row in table[1:]]
    assert len(rows) == len(differences)
    assert all(len(row) == 4 for row in rows)
    assert [row[0] for row in rows] == [d.field for d in sorted(differences, key=lambda d: d.rank)]


def test_markdown_cells_cannot_be_broken_by_a_pipe_or_a_line_break():
    weird = REPORT.model_copy(update={"outputs": (output("a|b\nc", False, "x | y\nz"),), "preprocessing": ()})
    model = tables(parse(parity_markdown(weird)))[0]
    assert len(model[1]) == 10
    assert model[1][0] == "a|b c"
    assert re.search(r"x \| y z$", model[1][9])
