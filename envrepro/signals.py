"""SIGTERM and SIGHUP end a command the way Ctrl-C does.

CI systems, `docker stop` and `timeout` cancel with SIGTERM; a closed terminal sends SIGHUP. The handler
raises `Terminated` (a KeyboardInterrupt) where the program is, so every `finally` and context manager of
the stages runs on the way out: the in-image runner removes its container, temporary directories are
deleted, files being written are left as they were. The CLI maps it to exit 128 + the signal's number.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from envrepro.errors import Terminated

HANDLED = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise Terminated; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python delivers signals to the main thread only
        return
    previous = {signum: signal.signal(signum, _raise) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise(signum: int, _frame: FrameType | None) -> None:
    for other in HANDLED:  # one unwinding: a repeated signal must not interrupt the cleanup it started
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum, signal.Signals(signum).name)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back while the block runs, for a step that must not be cut in two
    (creating a container: interrupted mid-request, it would exist without the ID its cleanup needs).
    The first signal that came meanwhile is raised again as the block ends, to the handler it would have
    met. (Recorded by a handler rather than blocked in the kernel: a signal may land in any thread.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    signums = (signal.SIGINT, *HANDLED)
    previous = {signum: signal.signal(signum, lambda got, _frame: held.append(got)) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])
