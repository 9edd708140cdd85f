"""`envrepro parity`: its options, and the run; the reports are rendered after it (see parity.py).

Nothing on the way to the container's start imports the snapshot's models (pydantic), the renderers or
NumPy: bench/parity_bench.py measures that fixed cost against a bare `docker run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from envrepro import options, runner
from envrepro.cli_options import display, snapshot_option
from envrepro.console import out
from envrepro.engine import DockerEngine
from envrepro.errors import EXIT_CHECK_FAILED, EXIT_OK
from envrepro.fsutil import write_atomic
from envrepro.parity import ParityRequest, run_parity
from envrepro.tolerance import Tolerance, Tolerances

if TYPE_CHECKING:
    from envrepro.parity_model import ParityReport


@click.command("parity")
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    required=True,
    help="The model file or SavedModel directory recorded by `snapshot --model`.",
)
@click.option(
    "--image",
    type=options.ImageReference(),
    metavar="NAME:TAG",
    help="Image to run in (default: the tag `envrepro build` gave).",
)
@snapshot_option("The snapshot that holds the model's reference outputs.")
@click.option(
    "--atol", type=options.ToleranceValue(), help="Absolute tolerance for every output (default: by dtype)."
)
@click.option(
    "--rtol", type=options.ToleranceValue(), help="Relative tolerance for every output (default: by dtype)."
)
@click.option(
    "--tolerance",
    "tolerances",
    type=options.OutputTolerance(),
    multiple=True,
    metavar="OUTPUT=ATOL[,RTOL]",
    help="Per-output tolerance override (OUTPUT: one of the model's outputs). Repeatable.",
)
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), help="Write the JSON report.")
@click.option(
    "--markdown", type=click.Path(path_type=Path, dir_okay=False), help="Write the Markdown report."
)
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), help="Write a JUnit XML report.")
@click.option("--custom-objects", metavar="MODULE|FILE.py", help="Module or file defining custom layers.")
@click.option("--unsafe-deserialization", is_flag=True, help="Allow Keras unsafe deserialization.")
@click.option("--timeout", type=options.Seconds(1), default="600", show_default=True, help="Seconds.")
@click.option(
    "--memory",
    type=options.MemorySize(),
    default="4g",
    show_default=True,
    help="Container memory limit (no swap beyond it), e.g. 4g or 512m.",
)
@click.option(
    "--cpus",
    type=options.Cpus(),
    help=f"Container CPU limit [default: {runner.DEFAULT_CPUS:g}, or the engine's CPUs if fewer].",
)
@click.option(
    "--preprocess",
    metavar="MODULE:FUNCTION|FILE.py:FUNCTION",
    help="The preprocessing function to replay in the image (default: the one `snapshot --preprocess` "
    "recorded). A FILE.py's directory is copied in read-only, so files it reads next to itself come along.",
)
def parity_cmd(
    *,
    model: Path,
    image: str | None,
    snapshot_path: Path,
    atol: float | None,
    rtol: float | None,
    tolerances: tuple[tuple[str, Tolerance], ...],
    report: Path | None,
    markdown: Path | None,
    junit: Path | None,
    custom_objects: str | None,
    unsafe_deserialization: bool,
    timeout: float,
    memory: int,
    cpus: float | None,
    preprocess: str | None,
) -> int:
    """Run the model inside the image on the reference inputs and compare with the training outputs.

    When the snapshot recorded preprocessing, it is replayed first on the same raw samples and compared
    on its own: the report says whether the preprocessing or the model differs."""
    request = ParityRequest(
        snapshot_path=snapshot_path,
        model=model,
        image=image,
        tolerances=Tolerances(atol=atol, rtol=rtol, per_output=dict(tolerances)),
        custom_objects=custom_objects,
        unsafe_deserialization=unsafe_deserialization,
        limits=runner.Limits(timeout_s=timeout, memory_bytes=memory, cpus=cpus),
        preprocess=preprocess,
    )
    with display().stage("parity", "running the model inside the image"):
        result = run_parity(request, DockerEngine)
    _show(result, json_path=report, markdown=markdown, junit=junit)
    return EXIT_OK if result.verdict == "pass" else EXIT_CHECK_FAILED


def _show(result: ParityReport, *, json_path: Path | None, markdown: Path | None, junit: Path | None) -> None:
    """The reports asked for, written whole or not at all, and the table on stdout."""
    from envrepro import report  # noqa: PLC0415 - after the run: parity starts without the renderers

    written = (
        (json_path, report.parity_json),
        (markdown, report.parity_markdown),
        (junit, report.parity_junit),
    )
    for path, render in written:
        if path is not None:
            write_atomic(path, render(result))
    out.print(report.parity_table(result))
