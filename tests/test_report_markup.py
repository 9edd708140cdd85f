"""Text that crosses a boundary is never rich markup in a table: an output name from a snapshot, a CPU
model string, a preprocessing path, pip's words in a bisect note, a label on an engine's image.

Those fields are free printable text (grammar.Text), so `[` and `]` are allowed in them. Given to a rich
table as a plain string, `[/]` made rendering raise MarkupError (a traceback instead of a report), and
`[red]` restyled what followed. Each table now shows the characters as they are."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from support.fake_engine import FakeEngine
from test_report_render import REPORT, output

from envrepro import inventory_report
from envrepro.bisect_report import BisectReport, TrialEntry, bisect_table
from envrepro.diff import Difference
from envrepro.engine_api import ImageInfo
from envrepro.inventory import DIGEST_LABEL, FILE_LABEL, take_inventory
from envrepro.report import differences_table, parity_table

HOSTILE = ("[/]", "[red]styled[/red]", "[bold", "x[/x]y")


def rendered(renderable: object, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", HOSTILE)
def test_an_output_name_is_shown_as_it_is(text: str) -> None:
    report = REPORT.model_copy(update={"outputs": (output(f"probs{text}"),), "preprocessing": ()})
    assert f"probs{text}" in rendered(parity_table(report))


@pytest.mark.parametrize("text", HOSTILE)
def test_a_difference_is_shown_as_it_is(text: str) -> None:
    found = Difference("cpu_model", "may", "cpu.model", f"AMD{text}", "Intel", "why", "https://x")
    assert f"AMD{text}" in rendered(differences_table([found], "a", "b", cosmetic=True))


@pytest.mark.parametrize("text", HOSTILE)
def test_a_bisect_trial_is_shown_as_it_is(text: str) -> None:
    trial = TrialEntry(groups=("preprocessing",), changed=f"prep{text}.py:f", image="img", built=False,
                       outcome="fail", max_abs_error=1.0, note=f"pip said {text}")  # fmt: skip
    fields = {"verdict": "no-cause", "groups": (), "builds": 0, "max_builds": 8, "model": "m.keras"}
    report = BisectReport.model_construct(**fields, image="img", summary="s", trials=(trial,))
    shown = rendered(bisect_table(report), width=200)  # one line: nothing wraps between the words
    assert f"prep{text}.py:f (pip said {text})" in shown


@pytest.mark.parametrize("text", HOSTILE)
def test_an_image_label_is_shown_as_it_is(text: str) -> None:
    engine = FakeEngine()
    labels = {DIGEST_LABEL: "d" * 64, FILE_LABEL: f"f{text}.json"}
    engine.images["envrepro:x"] = ImageInfo("sha256:x", 1, ("envrepro:x",), labels, ())
    assert f"f{text}.json" in rendered(inventory_report.images_table(take_inventory(engine, 0.0), 0.0))
