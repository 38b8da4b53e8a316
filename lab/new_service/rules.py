"""What a service started from this repository leaves out, and the named places rewritten.

Rules, not a second copy of the app: everything tracked in the checkout is copied except what
DROPPED names, then the edits below are applied. Each rule must still find what it names (a
pattern that matches nothing, an edit whose text is gone), or the generator stops and says
which rule went stale, so a change to the repository cannot silently leave the lab in a new
service. `lab.new_service.check` then proves the result by running its lint and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Path patterns (fnmatch over the path relative to the root; a trailing "/" is a folder).
# The lab and its tests, the high-availability tests (they drive the pg_auto_failover
# formation, a lab server), the benchmark's pages and figures, and this command's page.
DROPPED: Final = (
    "lab/",
    "tests/lab/",
    "tests/ha/",
    "tests/support/formation.py",
    "docs/benchmarks.md",
    "docs/bench*.json",
    "docs/bench*.png",
    "docs/new-service.md",
)
# Dropped too when present; absent is fine (folders that come and go with other work).
DROPPED_IF_PRESENT: Final = ("examples/",)

# Lab modules the kept tests need, moved into the tests: the PgBouncer backend is part of
# what the service supports (DB_PG_POOLER=transaction), and its tests start one of these.
MOVED: Final = {
    "lab/servers/__init__.py": "tests/servers/__init__.py",
    "lab/servers/pgbouncer.py": "tests/servers/pgbouncer.py",
}
# Every kept text file names the moved modules by their new names (as short as the old ones,
# or a docstring would outgrow the line length); the generator then sorts the imports.
RENAMED: Final = {
    "lab.servers.pgbouncer": "tests.servers.pgbouncer",
    "lab/servers/pgbouncer.py": "tests/servers/pgbouncer.py",
}


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace `old` by `new` in `path`; `old` must occur exactly once."""

    path: str
    old: str
    new: str


EDITS: Final = (
    Edit(
        "pyproject.toml",
        "# The repository's lab (lab/: benchmarks, soak, mutation, scratch servers), never"
        " installed:\n# asyncpg, psycopg 3 as the blocking reference, pgqueuer as the job"
        ' queue\'s peer.\nlab = ["asyncpg>=0.29,<0.33", "psycopg[binary]>=3.1,<3.4",'
        ' "pgqueuer>=1.6,<2"]\n',
        "",
    ),
    Edit(
        "pyproject.toml",
        '# `python -m lab.bench --plot`; deliberately not in dev.\nplot = ["matplotlib>=3.8,<4"]\n',
        "",
    ),
    Edit(
        "pyproject.toml",
        "# The suite runs the lab's quick forms (pgqueuer included) and the API.\n",
        "# The suite runs on PostgreSQL too, and tests the API and the events.\n",
    ),
    Edit("pyproject.toml", '"async-ledger[api,lab,events]"', '"async-ledger[api,postgres,events]"'),
    Edit("pyproject.toml", ', "tests", "lab"]', ', "tests"]'),
    Edit(
        "pyproject.toml",
        "\n[[tool.mypy.overrides]]\n# The plot extra is optional; type-check without it"
        ' installed too.\nmodule = ["matplotlib", "matplotlib.*"]\nignore_missing_imports = true\n',
        "",
    ),
    Edit(
        "pyproject.toml",
        "; lab/ holds the repository's tools and runs from a checkout only.",
        ".",
    ),
    Edit("tests/conftest.py", "; the formation's", ""),
)
# Its `pytest_plugins` loses every dropped module, whatever else it lists.
CONFTEST: Final = "tests/conftest.py"

# Makefile: paragraphs (blank-line separated) that run the lab are dropped.
MAKEFILE: Final = "Makefile"
MAKEFILE_DROP_MARKERS: Final = ("lab.", "lab/")


@dataclass(frozen=True, slots=True)
class DropSection:
    """Drop the Markdown section under `heading` (to the next heading of its level or above)."""

    path: str
    heading: str


@dataclass(frozen=True, slots=True)
class DropParagraph:
    """Drop the one paragraph of `path` that starts with `start`."""

    path: str
    start: str


@dataclass(frozen=True, slots=True)
class DropLines:
    """Drop the lines of `path` from the one that starts with `start` up to, not including,
    the next line that starts with `end` (just that line when `end` is empty)."""

    path: str
    start: str
    end: str = ""


DOC_RULES: Final = (
    DropSection("README.md", "## Measured, not assumed"),
    DropLines("README.md", "lab/ "),
    DropParagraph("README.md", "Starting your own service"),
    DropLines("README.md", "[new service](docs/new-service.md)"),
    DropLines("docs/architecture.md", "lab/ ", "```"),
)
