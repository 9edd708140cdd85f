"""`envrepro bisect`: its options, and the parity request they make (the chain lives in bisect.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from envrepro import options, runner
from envrepro.cli_options import snapshot_option
from envrepro.console import err, out
from envrepro.engine import DockerEngine
from envrepro.errors import EXIT_CHECK_FAILED, EXIT_OK
from envrepro.fsutil import write_atomic
from envrepro.parity import ParityRequest
from envrepro.tolerance import Tolerance, Tolerances
from envrepro.variants import DEFAULT_MAX_BUILDS


@click.command("bisect")
@click.option("--model", type=click.Path(path_type=Path), required=True, help="The model, as for parity.")
@click.option("--image", type=options.ImageReference(), metavar="NAME:TAG", help="Image (as for parity).")
@snapshot_option("The training record: the snapshot with the model's reference outputs.")
@click.option("--atol", type=options.ToleranceValue(), help="Absolute tolerance (default: by dtype).")
@click.option("--rtol", type=options.ToleranceValue(), help="Relative tolerance (default: by dtype).")
@click.option("--tolerance", "tolerances", type=options.OutputTolerance(), multiple=True,
              metavar="OUTPUT=ATOL[,RTOL]", help="Per-output tolerance override. Repeatable.")  # fmt: skip
@click.option("--custom-objects", metavar="MODULE|FILE.py", help="Module or file defining custom layers.")
@click.option("--unsafe-deserialization", is_flag=True, help="Allow Keras unsafe deserialization.")
@click.option("--preprocess", metavar="MODULE:FUNCTION|FILE.py:FUNCTION", help="As for parity.")
@click.option("--timeout", type=options.Seconds(1), default="600", show_default=True, help="Seconds per run.")
@click.option("--memory", type=options.MemorySize(), default="4g", show_default=True, help="Memory limit.")
@click.option("--cpus", type=options.Cpus(), help="Container CPU limit (as for parity).")
@click.option("--max-builds", type=click.IntRange(0), default=DEFAULT_MAX_BUILDS,
              show_default=True, help="At most this many variant images are built.")  # fmt: skip
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), help="Write the JSON report.")
@click.option(
    "--markdown", type=click.Path(path_type=Path, dir_okay=False), help="Write the Markdown report."
)
@click.option("--keep", is_flag=True, help="Keep the variant images this run built (a rerun reuses them).")
def bisect_cmd(
    *, max_builds: int, keep: bool, report: Path | None, markdown: Path | None, **given: Any
) -> int:
    """When parity fails, find the smallest set of differences whose return to training restores it.

    Variables are set at run time (no build); distributions go back in small images derived from the image.
    Exit 0: parity passes; 1: it fails (the verdict says whether a cause was found); 2: could not run."""
    from envrepro import bisect as bisect_mod  # noqa: PLC0415
    from envrepro import bisect_report  # noqa: PLC0415 - `envrepro parity` starts without the bisect chain

    request = bisect_mod.BisectRequest(_parity_request(**given), max_builds=max_builds, keep=keep)
    with err.status("bisecting: running the model in the image and its variants"):
        result = bisect_mod.bisect(request, DockerEngine, progress=lambda line: err.print(line, markup=False))
    document = bisect_report.to_report(result)
    for path, render in ((report, bisect_report.bisect_json), (markdown, bisect_report.bisect_markdown)):
        if path is not None:
            write_atomic(path, render(document))
    out.print(bisect_report.bisect_table(document))
    return EXIT_OK if result.baseline.passed else EXIT_CHECK_FAILED


def _parity_request(
    *, atol: float | None, rtol: float | None, tolerances: tuple[tuple[str, Tolerance], ...],
    timeout: float, memory: int, cpus: float | None, **given: Any,
) -> ParityRequest:  # fmt: skip
    return ParityRequest(
        tolerances=Tolerances(atol=atol, rtol=rtol, per_output=dict(tolerances)),
        limits=runner.Limits(timeout_s=timeout, memory_bytes=memory, cpus=cpus),
        **given,
    )
