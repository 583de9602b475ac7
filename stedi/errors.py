"""Errors a person at the command line caused and can fix, and the exit codes every command uses.

A part raises :class:`UserError` (or a subclass) with a message that names the fix; the ``stedi``
command (``stedi_app.cli.main``) prints it as one line on stderr and exits with its code, with no
traceback unless ``--debug`` is given.  Anything else that escapes a command is a defect: it is
reported in one line too, with the hint to re-run with ``--debug``.
"""

from __future__ import annotations

# Exit codes, documented in README.md ("Exit codes"); every command keeps to them.
EXIT_OK = 0
EXIT_FAILED_CHECK = 1  # the command ran, and what it checked did not hold (a reconciliation, a test)
EXIT_USAGE = 2  # bad option, bad input, missing lake or file: fix the command line or the config
EXIT_PERMANENT = 3  # an error retrying cannot fix: credentials, missing bucket, access denied
EXIT_BUSY = 4  # another writer holds the lake
EXIT_UNEXPECTED = 70  # a defect in stedi (EX_SOFTWARE of sysexits.h): please report it
EXIT_INTERRUPTED = 130  # stopped by a second Ctrl-C (128 + SIGINT)


class UserError(Exception):
    """A failure with a message a person can act on, and the exit code it ends the command with."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


class PermanentError(UserError):
    """Retrying will not help (credentials, a missing bucket, access denied): exit 3."""

    exit_code = EXIT_PERMANENT


class LakeBusyError(UserError):
    """Another run holds this lake's writer lock: exit 4."""

    exit_code = EXIT_BUSY
