"""What a running command shows while it works, on stderr: a status line, or the build's steps.

Every display takes events from the core through a callback (`on_event`) and never decides anything;
a line-per-event display for logs and CI is one more class with the same methods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from envrepro.console import err
from envrepro.engine_api import BuildEvent

MAX_INSTRUCTION = 70


@contextlib.contextmanager
def status(text: str, console: Console = err) -> Iterator[None]:
    """A spinner with `text` while the block runs (nothing when the stream is not a terminal)."""
    with console.status(text):
        yield


class BuildProgress:
    """A progress bar over the Dockerfile's steps, with the current instruction and cache hits."""

    def __init__(self, console: Console = err) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]build[/bold] {task.completed}/{task.total}"),
            BarColumn(),
            TextColumn("{task.description}"),
            console=console,
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
        label = shorten(event.instruction)
        if self.cached:
            label += f" [dim](cached {self.cached})[/dim]"
        self.progress.update(self.task, total=event.total, completed=event.step - 1, description=label)


def shorten(text: str, width: int = MAX_INSTRUCTION) -> str:
    return text if len(text) < width else text[: width - 3] + "..."
