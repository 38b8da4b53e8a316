"""The one table from an error to what `ledgerctl` prints and its exit status.

Every failure ends as one line on stderr, `ledgerctl: error: …`, never a traceback. The
services' typed errors (services/errors.py) come first; raw driver errors reach this table
only after services.db_errors.translate found no LedgerError for them. An HTTP layer keeps
its own table (api/problems.py) over the same error types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from db import SettingsError
from db.migrations import MigrationError
from services.errors import (
    DatabaseBusy,
    DatabaseUnavailable,
    LedgerError,
    NotFound,
    OperationTimeout,
    SchemaNotMigrated,
    StorageFull,
)

EXIT_ERROR: Final = 1  # a refused request, a database or configuration problem
EXIT_USAGE: Final = 2  # a malformed command line (argparse)


class CommandError(Exception):
    """A problem a command reports in one line (exit 1), e.g. the benchmark refusing its options."""


@dataclass(frozen=True, slots=True)
class Exit:
    """How one kind of error ends the command: `line` is a template over `{error}` (the
    error's own message) and `{url}` (the database, password masked)."""

    code: int
    line: str


_RETRY = "; running the same command again (with the same --key) is safe"

# Looked up along the error's class hierarchy: the most specific entry wins.
EXITS: Final[dict[type[BaseException], Exit]] = {
    SchemaNotMigrated: Exit(EXIT_ERROR, "{url}: {error}"),
    DatabaseUnavailable: Exit(EXIT_ERROR, "{error} ({url})"),
    DatabaseBusy: Exit(EXIT_ERROR, "{error}" + _RETRY),
    StorageFull: Exit(EXIT_ERROR, "{url}: {error}" + _RETRY),
    OperationTimeout: Exit(EXIT_ERROR, "{error}" + _RETRY),  # PoolExhausted too
    NotFound: Exit(EXIT_ERROR, "{error}"),
    LedgerError: Exit(EXIT_ERROR, "{error}"),  # bad input and refused requests
    SettingsError: Exit(EXIT_ERROR, "{error}"),
    MigrationError: Exit(EXIT_ERROR, "{error}"),
    CommandError: Exit(EXIT_ERROR, "{error}"),
    # Driver errors no LedgerError stands for: name the database, since "unable to open
    # database file" means little without knowing which one.
    DBAPIError: Exit(EXIT_ERROR, "database error on {url}: {error}"),
    SQLAlchemyError: Exit(EXIT_ERROR, "database error: {error}"),
}

# SQLite's messages for a file it cannot use do not say what to check.
_SQLITE_HINTS: Final = {
    "attempt to write a readonly database": (
        "the file or its directory is read-only; WAL mode also writes the -wal and -shm "
        "files next to it"
    ),
    "unable to open database file": "check the path and the permissions of its directory",
}


def exit_for(exc: BaseException, url: str) -> tuple[int, str] | None:
    """The exit status and the one line for `exc`, or None if the table has no entry."""
    for cls in type(exc).__mro__:
        entry = EXITS.get(cls)
        if entry is not None:
            return entry.code, entry.line.format(error=_message(exc), url=url)
    return None


def _message(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError):
        # Without the SQL statement or its parameters.
        text = str(exc.orig).strip().splitlines()
        line = text[0] if text else type(exc.orig).__name__
        hint = _SQLITE_HINTS.get(line)
        return f"{line} ({hint})" if hint else line
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
