"""The command line: parses arguments, chains the stages, and funnels every error into one line + a hint.

`main(argv) -> int` is testable without a shell; `run()` is the console-script entry point.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from envrepro import __version__, introspect, snapshot
from envrepro.errors import EXIT_OK, EXIT_USAGE, EnvreproError
from envrepro.report import snapshot_summary

DEFAULT_SNAPSHOT = "envrepro.lock.json"

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="envrepro")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Snapshot a training environment, rebuild it as a pinned image, prove the model's numbers match."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        force=True,
        handlers=[RichHandler(console=err, show_time=False, show_path=False)],
    )


@cli.command("snapshot")
@click.option(
    "--python",
    "python",
    metavar="PATH",
    help="Interpreter (or environment directory) to inspect. Default: the active virtualenv, "
    "else the current interpreter.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Model to fingerprint and record reference outputs for (.h5, .keras, SavedModel dir). Repeatable.",
)
@click.option(
    "--inputs",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE.npz",
    help="Inputs to record references on (keys input.N or the model's input names).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for generated inputs.")
@click.option(
    "--samples",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Number of generated input samples.",
)
@click.option(
    "--custom-objects",
    metavar="MODULE|FILE.py",
    help="Module or file that defines the model's custom layers (imported in the target).",
)
@click.option(
    "--unsafe-deserialization",
    is_flag=True,
    help="Allow Keras unsafe deserialization (Lambda layers). Only for files you trust.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_SNAPSHOT,
    show_default=True,
    help="Where to write the snapshot.",
)
@click.option("--show", is_flag=True, help="Print a summary table of the snapshot.")
def snapshot_cmd(
    *,
    python: str | None,
    models: tuple[Path, ...],
    inputs: Path | None,
    seed: int,
    samples: int,
    custom_objects: str | None,
    unsafe_deserialization: bool,
    output: Path,
    show: bool,
) -> int:
    """Record the target environment (and models' reference outputs) in a snapshot file."""
    if inputs is not None and not inputs.is_file():
        raise EnvreproError(f"{inputs}: no such inputs file", hint="--inputs takes an .npz file")
    request = introspect.ProbeRequest(
        python=introspect.resolve_interpreter(python),
        models=models,
        inputs=inputs,
        seed=seed,
        samples=samples,
        custom_objects=custom_objects,
        unsafe_deserialization=unsafe_deserialization,
    )
    with err.status("probing the environment" + (" and models" if models else "")):
        snap = introspect.take_snapshot(request, output)
    if show:
        out.print(snapshot_summary(snap, str(output)))
    blocked = [d for d in snap.environment.distributions if not d.reproducible]
    err.print(
        f"wrote {output} ({len(snap.environment.distributions)} distributions, "
        f"{len(snap.models)} models"
        + (f", {len(blocked)} not reproducible from an index" if blocked else "")
        + ")"
    )
    return EXIT_OK


@cli.command("show")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False), default=DEFAULT_SNAPSHOT)
def show_cmd(path: Path) -> int:
    """Print a summary of a snapshot file."""
    out.print(snapshot_summary(snapshot.load(path), str(path)))
    return EXIT_OK


@cli.command("schema")
@click.argument("what", type=click.Choice(["snapshot"]))
def schema_cmd(what: str) -> int:
    """Print the JSON Schema of an envrepro document."""
    schemas = {"snapshot": snapshot.Snapshot.model_json_schema()}
    out.print_json(json.dumps(schemas[what]))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. Every EnvreproError becomes one line and a hint."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="envrepro", standalone_mode=False
        )
    except click.exceptions.Abort:
        _error_line("interrupted")
        return 130
    except KeyboardInterrupt:
        _error_line("interrupted; files being written were left as they were")
        return 130
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        _error_line(exc.format_message(), f"see `{ctx.command_path} --help`" if ctx is not None else None)
        return EXIT_USAGE
    except EnvreproError as exc:
        return _report_error(exc)
    return result if isinstance(result, int) else EXIT_OK


def _report_error(exc: EnvreproError) -> int:
    _error_line(str(exc), exc.hint)
    logging.getLogger(__name__).debug("details", exc_info=exc)
    return exc.exit_code


def _error_line(message: str, hint: str | None = None) -> None:
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    if hint:
        err.print(Text.assemble(("hint: ", "bold"), hint), soft_wrap=True)


def run() -> None:
    sys.exit(main())
