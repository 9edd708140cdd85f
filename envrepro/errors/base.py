"""The one error root. Core code raises these; only the CLI turns them into a line, a hint and an exit code.

Exit codes: 2 for usage or input errors and anything that kept a command from running, 1 for a check that
ran and failed (parity), 0 for success."""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class EnvreproError(Exception):
    """Root of every error envrepro reports to a user."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message
