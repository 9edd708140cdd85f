"""The CLI's two streams and their colour policy: colour codes only on a terminal, and never with NO_COLOR.

rich decides "terminal or not" per stream (and honours FORCE_COLOR / TTY_COMPATIBLE); NO_COLOR set to
anything non-empty (https://no-color.org) switches every colour and style code off, bold included.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO

from rich.console import Console
from rich.text import Text


def make_console(
    *,
    stderr: bool = False,
    file: IO[str] | None = None,
    force_terminal: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> Console:
    """A console for stdout (or stderr) that follows the colour policy above."""
    no_color = bool((os.environ if environ is None else environ).get("NO_COLOR"))
    return Console(
        stderr=stderr,
        file=file,
        force_terminal=force_terminal,
        highlight=False,
        no_color=no_color,
        color_system=None if no_color else "auto",
    )


out = make_console()
err = make_console(stderr=True)


def error_line(message: str, hint: str | None = None, console: Console = err) -> None:
    """`error: MESSAGE` and, when there is one, `hint: HINT`: how every failure reaches the user."""
    console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    if hint:
        console.print(Text.assemble(("hint: ", "bold"), hint), soft_wrap=True)
