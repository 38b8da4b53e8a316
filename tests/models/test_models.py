"""Models in async code: no hidden IO, usable after commit, aware timestamps, constraints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from models import Account, User
from models.base import UTCDateTime
from tests.support.ledger import open_account


async def test_touching_an_unloaded_relationship_raises_instead_of_querying(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions)
    async with sessions() as session:
        loaded = await session.get_one(Account, account.id)
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = loaded.owner


async def test_relationships_load_when_asked_for_explicitly(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions)
    async with sessions() as session:
        user = await session.scalar(
            select(User).options(selectinload(User.accounts)).where(User.id == account.owner_id)
        )
        assert user is not None
        assert [a.id for a in user.accounts] == [account.id]


async def test_attributes_stay_usable_after_commit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        user = User(email="after@example.com", name="After Commit")
        session.add(user)
    # expire_on_commit=False: no refresh (which would be hidden IO) after the commit.
    assert user.name == "After Commit"
    assert user.id is not None


async def test_timestamps_come_back_timezone_aware_in_utc(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions)
    async with sessions() as session:
        loaded = await session.get_one(Account, account.id)
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset() == UTC.utcoffset(None)
    assert loaded.updated_at >= loaded.created_at


async def test_the_database_refuses_a_negative_balance_whatever_the_code_does(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account = await open_account(sessions, balance=100)
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await session.execute(
                update(Account).where(Account.id == account.id).values(balance=-1)
            )


def test_a_sqlite_timestamp_binds_to_the_same_text_whether_or_not_it_was_just_bound() -> None:
    dialect = sqlite.dialect()
    remembered = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    plain = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert remembered is not None
    assert plain is not None
    first = datetime(2026, 12, 1, 22, 0, 0, 5, tzinfo=UTC)
    other = datetime(2026, 12, 1, 23, 0, 0, tzinfo=timezone(timedelta(hours=1)))  # 22:00 UTC
    values = [first, first, other, first, None, None, other]
    expected = [plain(v.astimezone(UTC).replace(tzinfo=None)) if v else None for v in values]
    assert [remembered(v) for v in values] == expected
