"""Alembic autogenerate hooks: revision files that run, pass `make lint` and are numbered.

alembic/env.py passes these to `context.configure()`. Without them Alembic writes
`models.base.UTCDateTime()` (a NameError: the file does not import `models`, and must not,
since a migration outlives the models it was written against), renders a timestamp default
as `(CURRENT_TIMESTAMP)` on SQLite but `CURRENT_TIMESTAMP` on PostgreSQL, and names the
revision with a random hex id instead of the next number after 0001, 0002, ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from alembic.autogenerate.api import AutogenContext
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.schema import DefaultClause
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeDecorator, TypeEngine

REVISION_ID_WIDTH = 4
# What alembic.util.rev_id() makes when nobody chose an id (`--rev-id` not given).
_RANDOM_REVISION_ID = re.compile(r"[0-9a-f]{12}")


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render project types as the plain SQLAlchemy type they store, and server defaults
    the same way on every engine; everything else is left to Alembic (False)."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return _render_plain_type(obj.impl_instance, autogen_context)
    if type_ == "server_default" and isinstance(obj, DefaultClause):
        return _render_server_default(obj, autogen_context)
    return False


def _render_plain_type(
    type_: TypeEngine[Any], autogen_context: AutogenContext
) -> str | Literal[False]:
    if isinstance(type_, TypeDecorator):  # a project type over another project type
        return _render_plain_type(type_.impl_instance, autogen_context)
    module = type(type_).__module__
    dialect = re.match(r"sqlalchemy\.dialects\.(\w+)", module)
    if dialect is not None:
        autogen_context.imports.add(f"from sqlalchemy.dialects import {dialect.group(1)}")
        return f"{dialect.group(1)}.{type_!r}"
    if module.startswith("sqlalchemy."):
        return f"sa.{type_!r}"
    # A UserDefinedType: only its author knows how to spell it; Alembic's default stays.
    return False


def _render_server_default(
    default: DefaultClause, autogen_context: AutogenContext
) -> str | Literal[False]:
    if isinstance(default.arg, str):
        return False  # a literal such as "0": Alembic renders it as a plain string
    if not isinstance(default.arg, ClauseElement):
        return False
    # Compiled without the parentheses Alembic's SQLite renderer adds, so the file is the
    # same whichever engine it was generated on; SQLAlchemy's SQLite DDL compiler puts them
    # back where SQLite needs them (any default that is not a single word).
    sql = str(
        default.arg.compile(dialect=autogen_context.dialect, compile_kwargs={"literal_binds": True})
    )
    return f"sa.text({sql!r})"


def next_revision_id(revision_ids: Iterable[str]) -> str:
    """The number after the highest numeric revision id, zero-padded: 0003 after 0002."""
    numbers = [int(rev) for rev in revision_ids if rev.isdigit()]
    return str(max(numbers, default=0) + 1).zfill(REVISION_ID_WIDTH)


def number_revisions(script: ScriptDirectory, chosen: str | None = None) -> Any:
    """A `process_revision_directives` hook giving new revisions the next number as id,
    unless one was `chosen` (`alembic revision --rev-id ...`)."""

    def process(
        context: MigrationContext, revision: Any, directives: list[MigrationScript]
    ) -> None:
        taken = [rev.revision for rev in script.walk_revisions()]
        for directive in directives:
            if chosen is not None and directive.rev_id == chosen:
                continue
            if directive.rev_id is None or _RANDOM_REVISION_ID.fullmatch(directive.rev_id):
                directive.rev_id = next_revision_id(taken)
                taken.append(directive.rev_id)

    return process
