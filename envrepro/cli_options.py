"""The options of `snapshot` and `build`, declared once and parsed to typed values before any work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from envrepro.imageref import check_tag_reference
from envrepro.options import Platform
from envrepro.progress import Display, LogFormat, display_for
from envrepro.snapshot_file import DEFAULT_NAME, default_path

F = TypeVar("F", bound=Callable[..., Any])


def _default_snapshot(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path:
    return default_path() if value is None else value


def _tag(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else check_tag_reference(value)


def choice_option(name: str, choices: list[str], text: str, **extra: Any) -> Callable[[F], F]:
    """`name` taking one of `choices`; the first is the default, shown in --help."""
    kind = click.Choice(choices)
    return click.option(name, type=kind, default=choices[0], show_default=True, help=text, **extra)


def snapshot_option(text: str) -> Callable[[F], F]:
    """`--snapshot FILE` (default envrepro.snapshot.json, else the old envrepro.lock.json), as build and
    parity take it."""
    return click.option(
        "--snapshot",
        "snapshot_path",
        type=click.Path(path_type=Path, dir_okay=False),
        callback=_default_snapshot,
        help=f"{text}  [default: {DEFAULT_NAME}]",
    )


snapshot_argument = click.argument(
    "path", type=click.Path(path_type=Path, dir_okay=False), required=False, callback=_default_snapshot
)


def _npz_option(name: str, text: str) -> Callable[[F], F]:
    return click.option(name, type=click.Path(path_type=Path, dir_okay=False), metavar="FILE.npz", help=text)


def snapshot_options(command: F) -> F:
    """What `envrepro snapshot` takes."""
    for option in reversed(_SNAPSHOT):
        command = option(command)
    return command


def build_options(command: F) -> F:
    """What `envrepro build` takes (besides --snapshot)."""
    for option in reversed(_BUILD):
        command = option(command)
    return command


_SNAPSHOT = [
    click.option(
        "--python",
        "python",
        metavar="PATH",
        help="Interpreter (or environment directory) to inspect. Default: the active virtualenv, "
        "else the current interpreter.",
    ),
    click.option(
        "--model",
        "models",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="Model to fingerprint and record reference outputs for (.h5, .keras, SavedModel dir). "
        "Repeatable.",
    ),
    _npz_option("--inputs", "Inputs to record references on (keys input.N or the model's input names)."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed for generated inputs."),
    click.option(
        "--samples",
        type=click.IntRange(1),
        default=64,
        show_default=True,
        help="Number of generated input samples.",
    ),
    click.option(
        "--custom-objects",
        metavar="MODULE|FILE.py",
        help="Module or file that defines the model's custom layers (imported in the target).",
    ),
    click.option(
        "--unsafe-deserialization",
        is_flag=True,
        help="Allow Keras unsafe deserialization (Lambda layers). Only for files you trust.",
    ),
    click.option(
        "--preprocess",
        metavar="MODULE:FUNCTION|FILE.py:FUNCTION",
        help="Your preprocessing function: recorded on --raw samples here and replayed by parity in the "
        "image. Without --inputs, models are recorded on its output.",
    ),
    _npz_option(
        "--raw",
        "Raw samples for --preprocess: keys raw.0, raw.1, ... (the function's arguments) or one array.",
    ),
    click.option(
        "-o",
        "--output",
        type=click.Path(path_type=Path, dir_okay=False),
        default=DEFAULT_NAME,
        show_default=True,
        help="Where to write the snapshot (its reference arrays go to the .ref directory beside it).",
    ),
    click.option("--show", is_flag=True, help="Print a summary table of the snapshot."),
]

_BUILD = [
    choice_option(
        "--target",
        ["auto", "cpu", "gpu"],
        "auto: GPU when the snapshot's TensorFlow is a CUDA build or nvidia-* wheels are installed.",
    ),
    click.option("--base-image", metavar="IMAGE", help="Build on this base instead of the resolved one."),
    click.option(
        "--platform",
        type=Platform(),
        metavar="linux/amd64|linux/arm64",
        help="The image's platform. Default: the training machine's, from the snapshot (x86_64 -> "
        "linux/amd64, aarch64/arm64 -> linux/arm64). Another than the engine's own needs QEMU (binfmt_misc) "
        "on the engine's machine.",
    ),
    click.option(
        "--tag",
        metavar="NAME:TAG",
        callback=_tag,
        help="Also tag the image with this name (parity: --image).",
    ),
    click.option(
        "--out",
        "out_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("build"),
        show_default=True,
        help="Build directory: Dockerfile and requirements.lock.txt.",
    ),
    click.option("--render-only", is_flag=True, help="Write the Dockerfile and the lock; do not build."),
    click.option(
        "--pip-cert",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help="CA bundle the builder stage's pip trusts (default: pip's own `cert` / PIP_CERT).",
    ),
    click.option(
        "--index-url",
        "index_urls",
        multiple=True,
        metavar="URL",
        help="Package index for the builder stage (repeat: the first is the index, the rest extra indexes).",
    ),
    click.option("--exclude", multiple=True, metavar="NAME", help="Leave a distribution out of the image."),
    click.option(
        "--exclude-unreproducible",
        is_flag=True,
        help="Leave out every distribution that cannot come from an index (editable, local path, VCS).",
    ),
    click.option(
        "--no-reuse-lock", is_flag=True, help="Recompute the lock even if the snapshot is unchanged."
    ),
    choice_option(
        "--lock-in",
        ["auto", "host", "image"],
        envvar="ENVREPRO_LOCK_IN",
        show_envvar=True,
        text="Where pip-compile resolves the lock. image: in a throwaway container of the base image (its "
        "Python, libc, architecture; needs the engine); host: here (only when this host is Linux with the "
        "image's Python major.minor, libc and architecture); auto: host when it matches, else image.",
    ),
    click.option(
        "--no-cache", is_flag=True, help="Build every step anew (the engine's layer cache is not used)."
    ),
    click.option(
        "--accept-python-patch",
        is_flag=True,
        envvar="ENVREPRO_ACCEPT_PYTHON_PATCH",
        help="Do not warn that the base image's Python differs from the snapshot's in the patch level "
        "only (e.g. 3.11.2 for 3.11.7). Also: ENVREPRO_ACCEPT_PYTHON_PATCH=1.",
    ),
]


# --- the global options every command reads -----------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The global options every command reads: how to show progress."""

    quiet: bool = False
    log_format: LogFormat = "auto"


def settings() -> Settings:
    obj = click.get_current_context().find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def display() -> Display:
    """How the running command shows its progress (the global -q and --log-format)."""
    chosen = settings()
    return display_for(quiet=chosen.quiet, log_format=chosen.log_format)
