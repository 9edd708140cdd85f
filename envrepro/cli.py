"""The command line: parses arguments, chains the stages, and funnels every error into one line + a hint.

`main(argv) -> int` is testable without a shell; `run()` is the console-script entry point.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.text import Text

from envrepro import __version__, doctor, introspect, inventory, snapshot
from envrepro.build import BuildRequest, BuildResult, build
from envrepro.compare import Tolerance
from envrepro.diff import diff
from envrepro.engine import BuildEvent, DockerEngine
from envrepro.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, EnvreproError
from envrepro.fsutil import write_atomic
from envrepro.parity import ParityRequest, image_environment, run_parity
from envrepro.parity_model import ParityReport
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
from envrepro.snapshot import Environment

DEFAULT_SNAPSHOT = "envrepro.lock.json"
F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def snapshot_option(text: str) -> Callable[[F], F]:
    """`--snapshot FILE` (default envrepro.lock.json), as build and parity take it."""
    return click.option(
        "--snapshot",
        "snapshot_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=DEFAULT_SNAPSHOT,
        show_default=True,
        help=text,
    )


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
    "--preprocess",
    metavar="MODULE:FUNCTION|FILE.py:FUNCTION",
    help="Your preprocessing function: recorded on --raw samples here and replayed by parity in the image. "
    "Without --inputs, models are recorded on its output.",
)
@click.option(
    "--raw",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE.npz",
    help="Raw samples for --preprocess: keys raw.0, raw.1, ... (the function's arguments) or one array.",
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
    preprocess: str | None,
    raw: Path | None,
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
        preprocess=preprocess,
        raw=raw,
    )
    with err.status("probing the environment" + (" and models" if models else "")):
        snap = introspect.take_snapshot(request, output)
    if show:
        out.print(snapshot_summary(snap, str(output)))
    blocked = [d for d in snap.environment.distributions if not d.reproducible]
    err.print(
        f"wrote {output} ({len(snap.environment.distributions)} distributions, "
        f"{len(snap.models)} models"
        + (", preprocessing" if snap.preprocessing else "")
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


@cli.command("build")
@snapshot_option("The snapshot to rebuild.")
@click.option(
    "--target",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
    help="auto: GPU when the snapshot's TensorFlow is a CUDA build or nvidia-* wheels are installed.",
)
@click.option("--base-image", metavar="IMAGE", help="Build on this base instead of the resolved one.")
@click.option("--tag", metavar="NAME:TAG", help="Also tag the image with this name (parity: --image).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("build"),
    show_default=True,
    help="Build directory: Dockerfile and requirements.lock.txt.",
)
@click.option("--render-only", is_flag=True, help="Write the Dockerfile and the lock; do not build.")
@click.option(
    "--pip-cert",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="CA bundle the builder stage's pip trusts (default: pip's own `cert` / PIP_CERT).",
)
@click.option(
    "--index-url",
    "index_urls",
    multiple=True,
    metavar="URL",
    help="Package index for the builder stage (repeat: the first is the index, the rest extra indexes).",
)
@click.option("--exclude", multiple=True, metavar="NAME", help="Leave a distribution out of the image.")
@click.option(
    "--exclude-unreproducible",
    is_flag=True,
    help="Leave out every distribution that cannot come from an index (editable, local path, VCS).",
)
@click.option("--no-reuse-lock", is_flag=True, help="Recompute the lock even if the snapshot is unchanged.")
@click.option(
    "--no-cache", is_flag=True, help="Build every step anew (the engine's layer cache is not used)."
)
def build_cmd(
    *,
    snapshot_path: Path,
    target: str,
    base_image: str | None,
    tag: str | None,
    out_dir: Path,
    render_only: bool,
    pip_cert: Path | None,
    index_urls: tuple[str, ...],
    exclude: tuple[str, ...],
    exclude_unreproducible: bool,
    no_reuse_lock: bool,
    no_cache: bool,
) -> int:
    """Render a pinned, hash-locked Dockerfile for the snapshot and build it on the Docker engine."""
    request = BuildRequest(
        snapshot_path=snapshot_path,
        out_dir=out_dir,
        target=target,  # type: ignore[arg-type]  # click.Choice guarantees the literal
        base_image=base_image,
        tag=tag,
        render_only=render_only,
        pip_cert=pip_cert,
        index_urls=index_urls,
        exclude=exclude,
        exclude_unreproducible=exclude_unreproducible,
        reuse_lock=not no_reuse_lock,
        no_cache=no_cache,
    )
    with BuildProgress() as progress:
        result = build(request, DockerEngine, progress.on_event)
    _print_build(result)
    return EXIT_OK


class BuildProgress:
    """A progress bar over the Dockerfile's steps, with the current instruction and cache hits."""

    def __init__(self) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]build[/bold] {task.completed}/{task.total}"),
            BarColumn(),
            TextColumn("{task.description}"),
            console=err,
            transient=True,
        )
        self.task = self.progress.add_task("resolving and locking", total=None)
        self.cached = 0

    def __enter__(self) -> BuildProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, event: BuildEvent) -> None:
        self.cached += event.cached
        text = event.instruction if len(event.instruction) < 70 else event.instruction[:67] + "..."
        label = f"{text} [dim](cached {self.cached})[/dim]" if self.cached else text
        self.progress.update(self.task, total=event.total, completed=event.step - 1, description=label)


def _print_build(result: BuildResult) -> None:
    target = result.target
    err.print(f"target: {target.kind} ({target.variant}) on {target.base_image}: {target.reason}")
    for name, why in result.lock.excluded:
        err.print(f"left out: {name}: {why}")
    for path in result.files:
        err.print(f"wrote {result.out_dir / path}")
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
@click.option("--image", metavar="NAME:TAG", help="Image to run in (default: the tag `envrepro build` gave).")
@snapshot_option("The snapshot that holds the model's reference outputs.")
@click.option("--atol", type=float, help="Absolute tolerance for every output (default: by dtype).")
@click.option("--rtol", type=float, help="Relative tolerance for every output (default: by dtype).")
@click.option(
    "--tolerance",
    "tolerances",
    multiple=True,
    metavar="OUTPUT=ATOL[,RTOL]",
    help="Per-output tolerance override. Repeatable.",
)
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), help="Write the JSON report.")
@click.option(
    "--markdown", type=click.Path(path_type=Path, dir_okay=False), help="Write the Markdown report."
)
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), help="Write a JUnit XML report.")
@click.option("--custom-objects", metavar="MODULE|FILE.py", help="Module or file defining custom layers.")
@click.option("--unsafe-deserialization", is_flag=True, help="Allow Keras unsafe deserialization.")
@click.option("--timeout", type=click.FloatRange(1), default=600, show_default=True, help="Seconds.")
@click.option("--memory", default="4g", show_default=True, help="Container memory limit.")
@click.option(
    "--preprocess",
    metavar="MODULE:FUNCTION|FILE.py:FUNCTION",
    help="The preprocessing function to replay in the image (default: the one `snapshot --preprocess` "
    "recorded). A FILE.py's directory is mounted read-only, so files it reads next to itself come along.",
)
def parity_cmd(
    *,
    model: Path,
    image: str | None,
    snapshot_path: Path,
    atol: float | None,
    rtol: float | None,
    tolerances: tuple[str, ...],
    report: Path | None,
    markdown: Path | None,
    junit: Path | None,
    custom_objects: str | None,
    unsafe_deserialization: bool,
    timeout: float,
    memory: str,
    preprocess: str | None,
) -> int:
    """Run the model inside the image on the reference inputs and compare with the training outputs.

    When the snapshot recorded preprocessing, it is replayed first on the same raw samples and compared
    on its own: the report says whether the preprocessing or the model differs."""
    request = ParityRequest(
        snapshot_path=snapshot_path,
        model=model,
        image=image,
        atol=atol,
        rtol=rtol,
        per_output=dict(_tolerance(spec) for spec in tolerances),
        custom_objects=custom_objects,
        unsafe_deserialization=unsafe_deserialization,
        timeout_s=timeout,
        memory=memory,
        preprocess=preprocess,
    )
    with err.status("running the model inside the image"):
        result = run_parity(request, DockerEngine)
    _write_reports(result, report=report, markdown=markdown, junit=junit)
    out.print(parity_table(result))
    return EXIT_OK if result.verdict == "pass" else EXIT_CHECK_FAILED


def _tolerance(spec: str) -> tuple[str, Tolerance]:
    name, sep, values = spec.partition("=")
    try:
        atol, _, rtol = values.partition(",")
        if not sep or not name:
            raise ValueError(spec)
        return name, Tolerance(atol=float(atol), rtol=float(rtol) if rtol else 0.0)
    except ValueError:
        raise EnvreproError(
            f"--tolerance {spec!r} is not OUTPUT=ATOL[,RTOL]", hint="e.g. --tolerance logits=1e-4,1e-3"
        ) from None


def _write_reports(
    result: ParityReport, *, report: Path | None, markdown: Path | None, junit: Path | None
) -> None:
    for path, render in ((report, parity_json), (markdown, parity_markdown), (junit, parity_junit)):
        if path is not None:
            write_atomic(path, render(result))


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
    differences = diff(_environment(a), _environment(b))
    if fmt == "json":
        out.print(differences_json(differences, a, b), soft_wrap=True, markup=False)
    elif fmt == "markdown":
        out.print(differences_markdown(differences, a, b), soft_wrap=True, markup=False)
    else:
        out.print(differences_table(differences, a, b, cosmetic=show_all))
    return EXIT_CHECK_FAILED if any(d.group == "breaks" for d in differences) else EXIT_OK


def _environment(spec: str) -> Environment:
    kind, sep, rest = spec.partition(":")
    if sep and kind == "image":
        return image_environment(DockerEngine(), rest)
    if sep and kind == "python":
        return introspect.environment_of(introspect.resolve_interpreter(rest))
    return snapshot.load(Path(spec)).environment


@cli.command("schema")
@click.argument("what", type=click.Choice(["snapshot", "parity"]))
def schema_cmd(what: str) -> int:
    """Print the JSON Schema of an envrepro document (a snapshot, a parity report)."""
    schemas = {"snapshot": snapshot.Snapshot.model_json_schema(), "parity": ParityReport.model_json_schema()}
    out.print_json(json.dumps(schemas[what]))
    return EXIT_OK


# --- disk hygiene and doctor: `envrepro images`, `envrepro clean`, `envrepro doctor` ----------------------


@cli.command("images")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def images_cmd(fmt: str) -> int:
    """List the images envrepro built on the engine (found by its labels) and its builder-stage cache."""
    found = inventory.take_inventory(DockerEngine())
    if fmt == "json":
        out.print(inventory.inventory_json(found), soft_wrap=True, markup=False, highlight=False)
        return EXIT_OK
    out.print(inventory.images_table(found))
    out.print(inventory.builders_summary(found), markup=False)
    return EXIT_OK


def _older_than(_ctx: click.Context, _param: click.Parameter, value: str | None) -> object:
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
    request = inventory.CleanRequest(everything, older_than, dry_run)  # type: ignore[arg-type]
    for line in inventory.clean_lines(inventory.clean(DockerEngine(), request)):
        out.print(line, markup=False)
    return EXIT_OK


@cli.command("doctor")
@click.option(
    "--snapshot",
    "snapshot_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_SNAPSHOT,
    show_default=True,
    help="Check the base image this snapshot resolves to (skipped when the file does not exist).",
)
@click.option("--base-image", metavar="IMAGE", help="Check this base image instead.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def doctor_cmd(snapshot_path: Path, base_image: str | None, fmt: str) -> int:
    """Check that a build can succeed here: engine, storage, disk, package index, base image, host."""
    diagnosis = doctor.diagnose(doctor.DoctorRequest(snapshot_path, base_image), DockerEngine)
    if fmt == "json":
        out.print(doctor.render_json(diagnosis), soft_wrap=True, markup=False, highlight=False)
    else:
        for line in doctor.render_lines(diagnosis):
            out.print(line, soft_wrap=True, markup=False, highlight=False)
    return EXIT_OK if diagnosis.ok else EXIT_USAGE


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
