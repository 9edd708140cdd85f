"""Parity: the model in the image -> its outputs against the training side's -> explain -> report.

This module only chains the stages: `parity_training` (the training side), `runner` (the probe inside a
locked-down container of the image), then `parity_verdict`: `compare` (pure NumPy), `explain` (pure
causes) and the typed `ParityReport`. Only the probe (standard library + the image's own TF/NumPy) runs in
the container: envrepro is not installed there.

The container starts as early as the trust rules allow (runner.launched_probe): with --image, before the
snapshot is even read. Python's start, the environment record and TensorFlow's import take seconds in the
image; meanwhile this process imports and runs the training side (`parity_training`: the snapshot
validated, the model found in it, every flag checked), then sends the probe its arguments and files, none
of which reaches the container unchecked. The rest of the training side (reading the reference arrays and
checking their digests, importing NumPy and the comparison) is done while the model runs in the image. A
bad snapshot or a reference that fails its digests is still an error, and the container is removed.
Without --image the snapshot's digest names the image, so the snapshot is read first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from envrepro import runner
from envrepro.engine_api import ContainerEngine
from envrepro.errors import EnvreproError, InputFileError
from envrepro.runner import Limits
from envrepro.signals import deferred_signals
from envrepro.target import default_image_tag
from envrepro.tolerance import Tolerances

if TYPE_CHECKING:
    from envrepro.parity_model import ParityReport
    from envrepro.parity_training import TrainingSide
    from envrepro.snapshot import Environment


@dataclass(frozen=True)
class ParityRequest:
    snapshot_path: Path
    model: Path
    image: str | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    custom_objects: str | None = None
    unsafe_deserialization: bool = False
    limits: Limits = field(default_factory=Limits)
    # Where the preprocessing function is now (MODULE:FUNCTION or FILE.py:FUNCTION); default: as recorded.
    preprocess: str | None = None
    # Variables set (None: unset) for this run only, over the image's own (bisect's variants).
    environment: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class ParityRun:
    """A parity report and the two environments it compared (what bisect groups)."""

    report: ParityReport
    training: Environment
    image: Environment


def run_parity(request: ParityRequest, engine: Callable[[], ContainerEngine]) -> ParityReport:
    """Check the inputs, then connect to the engine (`engine()`), run the probe in the image and compare."""
    return parity_run(request, engine).report


def parity_run(request: ParityRequest, engine: Callable[[], ContainerEngine]) -> ParityRun:
    """`run_parity`, keeping the training and image environments."""
    if not request.model.exists():
        raise InputFileError(request.model, "no such model file or directory")
    image, known = _image(request)
    with contextlib.ExitStack() as stack:
        launched = _launch(stack, request, image, engine)
        training = known or _training_side(request)
        sent = training.probe_arguments(request)
        if isinstance(launched, EnvreproError):
            raise launched  # the inputs were good: now the engine's or the image's problem is the error
        running = launched.send(*sent)
        # while the model runs in the image: the numeric side imported, the reference arrays read and checked.
        # A signal is held during an import: raised inside the import machinery's callbacks it is lost.
        with deferred_signals():
            # report: not used here, the renderers the CLI needs next
            from envrepro import parity_verdict, report  # noqa: F401, PLC0415 - see the module's docstring
            from envrepro.image_run import image_run  # noqa: PLC0415 - likewise

        references = training.references(request.snapshot_path)
        output = running.output()
    ran = image_run(output, training.pre is not None)
    verdict = parity_verdict.build_report(
        request, training.snap, training.record, references, image=image, ran=ran, pre=training.pre
    )
    return ParityRun(verdict, training.snap.environment, ran.environment)


def _launch(
    stack: contextlib.ExitStack[bool | None],
    request: ParityRequest,
    image: str,
    engine: Callable[[], ContainerEngine],
) -> runner.LaunchedProbe | EnvreproError:
    """The probe's container, started (removed when `stack` closes). An engine that cannot be reached or an
    image that is not there is returned, raised once the training side is checked: a bad snapshot, model or
    flag is reported as such, whatever the engine."""
    try:
        env = dict(request.environment)
        return stack.enter_context(runner.launched_probe(engine(), image, request.limits, environment=env))
    except EnvreproError as exc:
        return exc


def _image(request: ParityRequest) -> tuple[str, TrainingSide | None]:
    """The image to start, and the training side if naming the image needed it (the snapshot's digest)."""
    if request.image:
        return request.image, None
    training = _training_side(request)
    return default_image_tag(training.snap.digest()), training


def _training_side(request: ParityRequest) -> TrainingSide:
    with deferred_signals():  # imported while the image may run: see parity_run
        from envrepro import parity_training  # noqa: PLC0415 - see the module's docstring

    return parity_training.read(request)
