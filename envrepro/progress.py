"""What a running command shows while it works, on stderr: stages, the build's steps, heartbeats.

The core reports typed events (`StageEvent`, `BuildEvent`, `BuildOutput`) through a callback and never
prints; the CLI picks one display for them (`display_for`):
- on a terminal, a live rich display: the stage, steps n/N, the running step and the megabytes pip
  said it downloads;
- elsewhere (a file, a pipe, a CI log), one timestamped line per stage and per step, flushed at once,
  and a heartbeat while one runs long (which step, for how long, its last output line);
- `--log-format json`: the same events, one JSON object per line;
- `-q`: nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import IO, Any, Literal

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.text import Text

from envrepro.console import err
from envrepro.engine_api import BuildEvent, ProgressEvent, StageEvent

MAX_INSTRUCTION = 70
HEARTBEAT_S = 15.0  # at most this long without a line while something runs
LogFormat = Literal["auto", "text", "json"]
Clock = Callable[[], float]  # seconds since the epoch
_DOWNLOAD = re.compile(r"Downloading \S+ \(([\d.]+) (kB|MB|GB)\)")
_UNIT_MB = {"kB": 1e-3, "MB": 1.0, "GB": 1e3}


@contextlib.contextmanager
def status(text: str, console: Console = err) -> Iterator[None]:
    """A spinner with `text` while the block runs (nothing when the stream is not a terminal)."""
    with console.status(text):
        yield


@dataclass(frozen=True)
class Where:
    """Where a command is: its stage, the build step and since when, the last output line, downloads."""

    started: float
    stage: str = ""
    stage_message: str = ""
    step: int = 0
    total: int = 0
    instruction: str = ""
    since: float = 0.0  # when the stage or step began
    last_output: str = ""
    downloaded_mb: float = 0.0

    def after(self, event: ProgressEvent, now: float) -> Where:
        """Where the command is once `event` happened at `now`."""
        if isinstance(event, StageEvent):
            return replace(self, stage=event.stage, stage_message=event.message, since=now, last_output="")
        if isinstance(event, BuildEvent):
            if event.step == self.step and event.cached:
                return self
            return replace(
                self, step=event.step, total=event.total, instruction=event.instruction, since=now,
                last_output="",
            )  # fmt: skip
        return replace(self, last_output=event.line, downloaded_mb=self.downloaded_mb + megabytes(event.line))

    def activity(self) -> str:
        """What is running: the build step, or the stage's own message."""
        if self.step:
            return f"step {self.step}/{self.total} {shorten(self.instruction)}"
        return self.stage_message


def megabytes(line: str) -> float:
    """The size pip announces in `Downloading NAME.whl (475.2 MB)`, in MB (0 for other lines)."""
    found = _DOWNLOAD.search(line)
    return float(found.group(1)) * _UNIT_MB[found.group(2)] if found else 0.0


class Display:
    """The base of every display: a context manager that takes `ProgressEvent`s in `on_event`."""

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def on_event(self, event: ProgressEvent) -> None:  # noqa: ARG002 - a display that shows nothing
        return None

    def note(self, message: str) -> None:
        """A line of the command's summary (what it wrote, what it left out): plain text on stderr."""
        err.print(message, soft_wrap=True, markup=False)

    @contextlib.contextmanager
    def stage(self, name: str, message: str) -> Iterator[Display]:
        """The display running around a block that is one stage (e.g. parity), announced first."""
        with self:
            self.on_event(StageEvent(name, message))
            yield self


class Quiet(Display):
    """`-q`: no progress and no summary (errors still reach stderr through `error_line`)."""

    def note(self, message: str) -> None:  # noqa: ARG002 - quiet: the summary is not shown
        return None


@dataclass
class LineDisplay(Display):
    """One flushed line per event worth a line, for logs and CI; a heartbeat at least every `heartbeat_s`.

    `clock` and `tick()` make the heartbeat testable without sleeping; `__enter__` starts a thread that
    calls `tick()` every `tick_s` seconds."""

    stream: IO[str]
    json_lines: bool = False
    clock: Clock = time.time
    heartbeat_s: float = HEARTBEAT_S
    tick_s: float = 1.0
    where: Where = field(init=False)
    last_line_at: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.where = Where(started=self.clock())
        self.last_line_at = self.where.started

    def __enter__(self) -> LineDisplay:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="envrepro-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _beat(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.tick()

    def on_event(self, event: ProgressEvent) -> None:
        with self._lock:
            now = self.clock()
            before, self.where = self.where, self.where.after(event, now)
            if isinstance(event, StageEvent):
                self._write("stage", event.message, now)
            elif isinstance(event, BuildEvent) and (event.step != before.step or event.cached):
                message = "cached" if event.cached else event.instruction
                self._write("step", message, now, cached=event.cached)

    def note(self, message: str) -> None:
        if not self.json_lines:
            super().note(message)
            return
        with self._lock:
            self._write("note", message, self.clock())

    def tick(self) -> None:
        """Write a heartbeat when nothing was written for `heartbeat_s` seconds."""
        with self._lock:
            now = self.clock()
            if now - self.last_line_at < self.heartbeat_s or not self.where.stage:
                return
            where = self.where
            message = f"{where.activity()}: running for {now - where.since:.0f}s"
            if where.last_output:
                message += f"; last output: {shorten(where.last_output, 120)}"
            self._write("heartbeat", message, now)

    def _write(self, kind: str, message: str, now: float, **extra: Any) -> None:
        where = self.where
        stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        elapsed = round(now - where.started, 1)
        if self.json_lines:
            event = {"type": kind, "stage": where.stage, "step": where.step or None,
                     "total": where.total or None, "message": message, "elapsed": elapsed,
                     "timestamp": stamp, **extra}  # fmt: skip
            line = json.dumps(event, sort_keys=True)
        else:
            step = f" step {where.step}/{where.total}" if kind == "step" else ""
            line = f"{stamp} +{elapsed:.1f}s {where.stage}{step}: {message}"
        self.stream.write(line + "\n")
        self.stream.flush()
        self.last_line_at = now


class LiveDisplay(Display):
    """On a terminal: a live line with the stage, steps n/N, the running instruction and downloads."""

    def __init__(self, console: Console = err) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[stage]}[/bold] {task.fields[steps]}"),
            BarColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("", total=None, stage="", steps="")
        self.where = Where(started=time.time())
        self.cached = 0

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, event: ProgressEvent) -> None:
        self.where = self.where.after(event, time.time())
        if isinstance(event, StageEvent):
            self.progress.console.print(Text.assemble((f"{event.stage}: ", "dim"), event.message))
        if isinstance(event, BuildEvent):
            self.cached += event.cached
            self.progress.update(self.task, total=event.total, completed=event.step - 1)
        steps = f"{self.where.step}/{self.where.total}" if self.where.total else ""
        self.progress.update(self.task, description=self.label(), stage=self.where.stage, steps=steps)

    def label(self) -> str:
        where = self.where
        label = shorten(where.instruction) if where.step else where.stage_message
        extras = [f"cached {self.cached}"] * bool(self.cached)
        extras += [f"{where.downloaded_mb:,.0f} MB downloaded"] * bool(where.downloaded_mb)
        return label + (f" [dim]({', '.join(extras)})[/dim]" if extras else "")


class JsonLogHandler(logging.Handler):
    """Warnings as JSON lines too under `--log-format json` (type: the level): CI parses one format."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        stamp = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {"type": record.levelname.lower(), "stage": "", "step": None, "total": None,
                 "message": record.getMessage(), "elapsed": None, "timestamp": stamp}  # fmt: skip
        self.stream.write(json.dumps(event, sort_keys=True) + "\n")
        self.stream.flush()


def display_for(*, quiet: bool, log_format: LogFormat, console: Console = err) -> Display:
    """The display a command's progress goes to: quiet, JSON lines, text lines, or live on a terminal."""
    if quiet:
        return Quiet()
    if log_format == "json":
        return LineDisplay(console.file, json_lines=True)
    if log_format == "text" or not console.is_terminal:
        return LineDisplay(console.file)
    return LiveDisplay(console)


def shorten(text: str, width: int = MAX_INSTRUCTION) -> str:
    return text if len(text) < width else text[: width - 3] + "..."
