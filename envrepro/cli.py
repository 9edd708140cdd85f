"""The command line: parses arguments, calls one core function per command, maps errors to exit codes.

`main(argv) -> int` is testable without a shell; `run()` is the console-script entry point. What the
commands show while they work is `progress`; the colour policy is `console`; signals are `signals`.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.logging import RichHandler

from envrepro import __version__, options, runner, snapshot
from envrepro.cli_bisect import bisect_cmd
from envrepro.cli_options import (
    build_options,
    choice_option,
    snapshot_argument,
    snapshot_option,
    snapshot_options,
)
from envrepro.console import err, error_line, out
from envrepro.engine import DockerEngine
from envrepro.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, EnvreproError, Terminated
from envrepro.fsutil import write_atomic
from envrepro.parity import ParityRequest, run_parity
from envrepro.parity_model import ParityReport
from envrepro.progress import Display, JsonLogHandler, LogFormat, display_for
from envrepro.report import (
    differences_json,
    differences_markdown,
    differences_table,
    parity_json,
    parity_junit,
    parity_markdown,
    parity_table,
    snapshot_summary,
)
from envrepro.signals import terminate_on_signals
from envrepro.snapshot import Snapshot
from envrepro.tolerance import Tolerance, Tolerances

if TYPE_CHECKING:
    from envrepro.build import BuildResult

# What only one command needs is imported in that command (build, diff, snapshot, images/clean, doctor):
# `envrepro parity` starts without the lock, the renderer, the inventory or the doctor.

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="envrepro")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no warnings; errors still print.")
@choice_option(
    "--log-format",
    ["auto", "text", "json"],
    "Progress on stderr: auto (live on a terminal, timestamped lines elsewhere), text, or json "
    "(one event per line).",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, log_format: LogFormat) -> None:
    """Snapshot a training environment, rebuild it as a pinned image, prove the model's numbers match."""
    ctx.obj = Settings(quiet=quiet, log_format=log_format)
    level = logging.ERROR if quiet else logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        force=True,
        handlers=[_log_handler(log_format)],
    )


def _log_handler(log_format: LogFormat) -> logging.Handler:
    if log_format == "json":
        return JsonLogHandler(err.file)
    return RichHandler(console=err, show_time=False, show_path=False)


@dataclass(frozen=True)
class Settings:
    """The global options every command reads: how to show progress."""

    quiet: bool = False
    log_format: LogFormat = "auto"


def _settings() -> Settings:
    obj = click.get_current_context().find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def _display() -> Display:
    settings = _settings()
    return display_for(quiet=settings.quiet, log_format=settings.log_format)


@cli.command("snapshot")
@snapshot_options
def snapshot_cmd(*, python: str | None, output: Path, show: bool, **probe: Any) -> int:
    """Record the target environment (and models' reference outputs) in a snapshot file."""
    from envrepro import introspect  # noqa: PLC0415 - only this command needs it

    request = introspect.ProbeRequest(python=introspect.resolve_interpreter(python), **probe)
    with _display().stage("snapshot", "probing the environment" + (" and models" * bool(request.models))):
        snap = introspect.take_snapshot(request, output)
    if show:
        out.print(snapshot_summary(snap, str(output)))
    err.print(_written(snap, output))
    return EXIT_OK


def _written(snap: Snapshot, output: Path) -> str:
    blocked = [d for d in snap.environment.distributions if not d.reproducible]
    return (
        f"wrote {output} ({len(snap.environment.distributions)} distributions, {len(snap.models)} models"
        + (", preprocessing" if snap.preprocessing else "")
        + (f", {len(blocked)} not reproducible from an index" if blocked else "")
        + ")"
    )


@cli.command("show")
@snapshot_argument
def show_cmd(path: Path) -> int:
    """Print a summary of a snapshot file (default: envrepro.snapshot.json)."""
    out.print(snapshot_summary(snapshot.load(path), str(path)))
    return EXIT_OK


@cli.command("build")
@snapshot_option("The snapshot to rebuild.")
@build_options
def build_cmd(*, no_reuse_lock: bool, **options: Any) -> int:
    """Render a pinned, hash-locked Dockerfile for the snapshot and build it on the Docker engine."""
    from envrepro.build import BuildRequest, build  # noqa: PLC0415 - only this command needs it

    request = BuildRequest(reuse_lock=not no_reuse_lock, **options)
    with _display() as display:
        result = build(request, DockerEngine, display.on_event, display.on_event)
    _print_build(result, display)
    return EXIT_OK


def _print_build(result: BuildResult, display: Display) -> None:
    target = result.target
    display.note(f"target: {target.kind} ({target.variant}) on {target.base_image}: {target.reason}")
    for name, why in result.lock.excluded:
        display.note(f"left out: {name}: {why}")
    for path in result.files:
        display.note(f"wrote {result.out_dir / path}")
    if result.image is not None:
        size = result.image.size_bytes / 1e6
        out.print(f"image {result.image.image_id} ({size:,.0f} MB) tagged {', '.join(result.image.tags)}")


@cli.command("parity")
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
    with _display().stage("parity", "running the model inside the image"):
        result = run_parity(request, DockerEngine)
    for path, render in ((report, parity_json), (markdown, parity_markdown), (junit, parity_junit)):
        if path is not None:
            write_atomic(path, render(result))
    out.print(parity_table(result))
    return EXIT_OK if result.verdict == "pass" else EXIT_CHECK_FAILED


@cli.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table")
@click.option("--all", "show_all", is_flag=True, help="Also list cosmetic differences in the table.")
def diff_cmd(a: str, b: str, fmt: str, show_all: bool) -> int:
    """What differs between two environments, grouped by how much it can move numbers.

    A and B: a snapshot file, `image:NAME:TAG` (probed inside the image), or `python:PATH` (a live
    interpreter or environment). Exits 1 when a difference that breaks or changes results exists.
    """
    from envrepro.diff import breaks, diff  # noqa: PLC0415 - only this command needs it
    from envrepro.environments import load_environment  # noqa: PLC0415 - only this command needs it

    differences = diff(load_environment(a, DockerEngine), load_environment(b, DockerEngine))
    if fmt == "json":
        out.print(differences_json(differences, a, b), soft_wrap=True, markup=False)
    elif fmt == "markdown":
        out.print(differences_markdown(differences, a, b), soft_wrap=True, markup=False)
    else:
        out.print(differences_table(differences, a, b, cosmetic=show_all))
    return EXIT_CHECK_FAILED if breaks(differences) else EXIT_OK


@cli.command("schema")
@click.argument("what", type=click.Choice(["snapshot", "parity", "bisect"]))
def schema_cmd(what: str) -> int:
    """Print the JSON Schema of an envrepro document (a snapshot, a parity report)."""
    schemas = {"snapshot": snapshot.Snapshot.model_json_schema(), "parity": ParityReport.model_json_schema()}
    if what == "bisect":
        from envrepro.bisect_report import BisectReport  # noqa: PLC0415 - only this schema needs it

        schemas["bisect"] = BisectReport.model_json_schema()
    out.print_json(json.dumps(schemas[what]))
    return EXIT_OK


# --- disk hygiene and doctor: `envrepro images`, `envrepro clean`, `envrepro doctor` ----------------------


@cli.command("images")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def images_cmd(fmt: str) -> int:
    """List the images envrepro built on the engine (found by its labels) and its builder-stage cache."""
    from envrepro import inventory  # noqa: PLC0415 - only this command needs it

    found = inventory.take_inventory(DockerEngine())
    if fmt == "json":
        out.print(inventory.inventory_json(found), soft_wrap=True, markup=False, highlight=False)
        return EXIT_OK
    out.print(inventory.images_table(found))
    out.print(inventory.builders_summary(found), markup=False)
    return EXIT_OK


def _older_than(_ctx: click.Context, _param: click.Parameter, value: str | None) -> object:
    from envrepro import inventory  # noqa: PLC0415 - only this command needs it

    return None if value is None else inventory.parse_duration(value)


@cli.command("clean")
@click.option("--all", "everything", is_flag=True, help="Every envrepro image, not only replaced ones.")
@click.option(
    "--older-than",
    metavar="DURATION",
    callback=_older_than,
    help="Only images built longer ago than this: 30m, 12h, 7d, 2w.",
)
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
def clean_cmd(everything: bool, older_than: object, dry_run: bool) -> int:
    """Remove replaced envrepro images (all with --all) and their builder-stage cache.

    Images a container uses, or that carry a tag you gave (without --all), are kept."""
    from envrepro import inventory  # noqa: PLC0415 - only this command needs it

    request = inventory.CleanRequest(everything, older_than, dry_run)  # type: ignore[arg-type]
    for line in inventory.clean_lines(inventory.clean(DockerEngine(), request)):
        out.print(line, markup=False)
    return EXIT_OK


@cli.command("doctor")
@snapshot_option("Check the base image this snapshot resolves to (skipped when the file does not exist).")
@click.option("--base-image", metavar="IMAGE", help="Check this base image instead.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def doctor_cmd(snapshot_path: Path, base_image: str | None, fmt: str) -> int:
    """Check that a build can succeed here: engine, storage, disk, package index, base image, host."""
    from envrepro import doctor  # noqa: PLC0415 - only this command needs it

    diagnosis = doctor.diagnose(doctor.DoctorRequest(snapshot_path, base_image), DockerEngine)
    if fmt == "json":
        out.print(doctor.render_json(diagnosis), soft_wrap=True, markup=False, highlight=False)
    else:
        for line in doctor.render_lines(diagnosis):
            out.print(line, soft_wrap=True, markup=False, highlight=False)
    return EXIT_OK if diagnosis.ok else EXIT_USAGE


cli.add_command(bisect_cmd)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. SIGTERM and SIGHUP unwind like Ctrl-C (see `signals`)."""
    try:
        with terminate_on_signals():
            result = cli.main(
                args=list(argv) if argv is not None else None, prog_name="envrepro", standalone_mode=False
            )
    except (click.exceptions.Abort, click.ClickException, EnvreproError, KeyboardInterrupt) as exc:
        return exit_code(exc)
    return result if isinstance(result, int) else EXIT_OK


def exit_code(exc: BaseException) -> int:
    """The one exit policy: every way a command can end early becomes one line, a hint and a code."""
    if isinstance(exc, click.exceptions.Abort) and isinstance(exc.__cause__, KeyboardInterrupt):
        exc = exc.__cause__  # click turns Ctrl-C (and so Terminated) into Abort
    if isinstance(exc, Terminated):
        error_line(f"interrupted by {exc.name}; containers and temporary files were removed, "
                   "files being written were left as they were")  # fmt: skip
        return exc.exit_code
    if isinstance(exc, (KeyboardInterrupt, click.exceptions.Abort)):
        error_line("interrupted; files being written were left as they were")
        return EXIT_INTERRUPTED
    if isinstance(exc, click.ClickException):
        ctx = getattr(exc, "ctx", None)
        error_line(exc.format_message(), f"see `{ctx.command_path} --help`" if ctx is not None else None)
        return EXIT_USAGE
    if not isinstance(exc, EnvreproError):
        raise exc  # not a way a command ends: a bug, with its traceback
    error_line(str(exc), exc.hint)
    logging.getLogger(__name__).debug("details", exc_info=exc)
    return exc.exit_code


def run() -> None:
    code = main()
    gc.freeze()  # no last collection of what lives until exit anyway: ~0.1 s of every run (parity_bench.py)
    sys.exit(code)
