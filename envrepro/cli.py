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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.logging import RichHandler

from envrepro import __version__
from envrepro.cli_bisect import bisect_cmd
from envrepro.cli_options import (
    Settings,
    build_options,
    choice_option,
    display,
    snapshot_argument,
    snapshot_option,
    snapshot_options,
)
from envrepro.cli_parity import parity_cmd
from envrepro.console import err, error_line, out
from envrepro.engine import DockerEngine
from envrepro.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, EnvreproError, Terminated
from envrepro.progress import Display, JsonLogHandler, LogFormat
from envrepro.signals import terminate_on_signals

if TYPE_CHECKING:
    from envrepro.build import BuildResult
    from envrepro.snapshot import Snapshot

# What only one command needs is imported in that command, and so are the reports and the snapshot's
# models: `envrepro parity` (cli_parity.py) starts its container before it imports them (parity.py).

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


@cli.command("snapshot")
@snapshot_options
def snapshot_cmd(*, python: str | None, output: Path, show: bool, **probe: Any) -> int:
    """Record the target environment (and models' reference outputs) in a snapshot file."""
    from envrepro import introspect, report  # noqa: PLC0415 - only this command needs it

    request = introspect.ProbeRequest(python=introspect.resolve_interpreter(python), **probe)
    with display().stage("snapshot", "probing the environment" + (" and models" * bool(request.models))):
        snap = introspect.take_snapshot(request, output)
    if show:
        out.print(report.snapshot_summary(snap, str(output)))
    err.print(_written(snap, output), markup=False)  # a path is never rich markup
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
    from envrepro import report, snapshot  # noqa: PLC0415 - see above

    out.print(report.snapshot_summary(snapshot.load(path), str(path)))
    return EXIT_OK


@cli.command("build")
@snapshot_option("The snapshot to rebuild.")
@build_options
def build_cmd(*, no_reuse_lock: bool, **options: Any) -> int:
    """Render a pinned, hash-locked Dockerfile for the snapshot and build it on the Docker engine."""
    from envrepro.build import BuildRequest, build  # noqa: PLC0415 - only this command needs it

    request = BuildRequest(reuse_lock=not no_reuse_lock, **options)
    with display() as shown:
        result = build(request, DockerEngine, shown.on_event, shown.on_event)
    _print_build(result, shown)
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
        out.print(f"image {result.image.image_id} ({size:,.0f} MB) tagged {', '.join(result.image.tags)}",
                  markup=False)  # fmt: skip


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
    from envrepro.report import differences_json, differences_markdown, differences_table  # noqa: PLC0415

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
    from envrepro.parity_model import ParityReport  # noqa: PLC0415 - see above
    from envrepro.snapshot import Snapshot  # noqa: PLC0415 - see above

    schemas = {"snapshot": Snapshot.model_json_schema(), "parity": ParityReport.model_json_schema()}
    if what == "bisect":
        from envrepro.bisect_report import BisectReport  # noqa: PLC0415 - only this schema needs it

        schemas["bisect"] = BisectReport.model_json_schema()
    out.print_json(json.dumps(schemas[what]))
    return EXIT_OK


# --- disk hygiene and doctor: `envrepro images`, `envrepro clean`, `envrepro doctor` ----------------------


@cli.command("images")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def images_cmd(fmt: str) -> int:
    """List the images envrepro built on the engine (found by its labels), its builder-stage cache and
    what bisect left (variants kept with --keep, its files images)."""
    from envrepro import inventory, inventory_report  # noqa: PLC0415 - only this command needs them

    found = inventory.take_inventory(DockerEngine())
    if fmt == "json":
        out.print(inventory_report.inventory_json(found), soft_wrap=True, markup=False, highlight=False)
        return EXIT_OK
    out.print(inventory_report.images_table(found))
    out.print(inventory_report.builders_summary(found), markup=False)
    out.print(inventory_report.bisect_summary(found), markup=False)
    left = inventory_report.left_behind_summary(found)
    if left:
        out.print(left, markup=False)
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

    Bisect's variants go with the image they came from (all with --all); its files images, the cache of
    changed distributions, only with --all or --older-than. Images a container uses, or that carry a tag
    you gave (without --all), are kept."""
    from envrepro import inventory, inventory_report  # noqa: PLC0415 - only this command needs them

    request = inventory.CleanRequest(everything, older_than, dry_run)  # type: ignore[arg-type]
    for line in inventory_report.clean_lines(inventory.clean(DockerEngine(), request)):
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


cli.add_command(parity_cmd)
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
