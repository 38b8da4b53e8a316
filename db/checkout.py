"""The checkout the code runs from, if any: where its default database lives.

Run from a checkout (a clone, or an editable install of one), the default SQLite file is
the checkout's `ledger.db`, whichever directory a command starts in; `ledgerctl migrate`
from `alembic/` migrates the same file as from the root. An installed copy (`pip install
.`) has no checkout around it, and its default is `ledger.db` in the current directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

DEFAULT_SQLITE_FILE: Final = "ledger.db"

_ROOT = Path(__file__).resolve().parent.parent
# The files only a checkout has next to the packages (site-packages has neither).
CHECKOUT_ROOT: Final[Path | None] = (
    _ROOT if (_ROOT / "alembic.ini").is_file() and (_ROOT / "pyproject.toml").is_file() else None
)


def default_sqlite_path() -> Path:
    """The SQLite file used when DATABASE_URL is unset."""
    if CHECKOUT_ROOT is None:
        return Path(DEFAULT_SQLITE_FILE)
    return CHECKOUT_ROOT / DEFAULT_SQLITE_FILE
