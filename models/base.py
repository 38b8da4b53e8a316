"""Declarative base, constraint naming convention and the audit-timestamp mixin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, MetaData, func
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Named constraints make migrations reviewable and let Alembic drop or alter them by name,
# which SQLite's batch mode needs.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite has no 64-bit-specific integer type, and only an INTEGER PRIMARY KEY is an alias
# for the rowid that autoincrements, so ids are BIGINT on PostgreSQL and INTEGER on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is stored in UTC and always comes back timezone-aware.

    PostgreSQL's timestamptz does this natively; SQLite stores text without an offset,
    so values are normalised to UTC on the way in and tagged UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware datetime in UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        process = super().bind_processor(dialect)
        if process is None or dialect.name != "sqlite":
            return process
        # A batch binds one timestamp to every row it writes; on SQLite each conversion
        # formats a string in Python. Remember the last one: a datetime is immutable, so
        # the same object always gives the same text. One tuple, swapped whole, so that
        # threads sharing the engine cannot see half of an update.
        last: list[tuple[Any, Any]] = [(None, None)]

        def remembered(value: Any) -> Any:
            seen, text = last[0]
            if value is seen and value is not None:
                return text
            text = process(value)
            last[0] = (value, text)
            return text

        return remembered

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(AsyncAttrs, DeclarativeBase):
    """Base of every model. AsyncAttrs adds `await obj.awaitable_attrs.name` for lazy loads."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Entity(Base):
    """An abstract base for tables with a surrogate integer primary key `id`."""

    __abstract__ = True

    id: Mapped[int] = mapped_column(BigId, primary_key=True)


class TimestampMixin:
    """`created_at` and `updated_at`, set by the application in UTC."""

    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.current_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(),
        default=utcnow,
        onupdate=utcnow,
        server_default=func.current_timestamp(),
    )
