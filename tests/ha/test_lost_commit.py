"""The lost-acknowledgement window: the connection dies after COMMIT was sent and before
its answer arrived. A proxy (tests/support/commit_proxy.py) cuts it exactly there, with
the COMMIT either kept from the server (not committed) or applied (committed).

With an idempotency key the transfer resolves itself: the service runs it again with the
key, which finds the committed transfer or applies it now; either way exactly once.
Without a key nothing can tell a retry from a new transfer: the caller gets
OutcomeUnknown, and the database holds what it holds. (SQLite has no such window: COMMIT
is a call into the library in the same process, whose answer can only be lost with the
process itself; after a crash the WAL decides, tests/reliability/test_crash.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory
from models import Transfer
from services import TransferService
from services.errors import OutcomeUnknown
from tests.support.backends import postgres_direct_only
from tests.support.commit_proxy import CommitProxy, Window, commit_proxy
from tests.support.ledger import open_account

pytestmark = postgres_direct_only


@pytest.fixture
async def proxy(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[CommitProxy]:
    """A commit-cutting proxy in front of the (emptied) test database."""
    async with commit_proxy(database_url) as proxy:
        yield proxy


@pytest.fixture
async def proxied(
    proxy: CommitProxy, database_url: str
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions whose connections go through the proxy."""
    engine = create_engine(DatabaseSettings(url=proxy.url_for(database_url), pool_size=2))
    yield create_session_factory(engine)
    await engine.dispose()


async def _stored(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Transfer)) or 0)


@pytest.mark.parametrize("window", ["before", "after"])
async def test_a_keyed_transfer_whose_commit_answer_is_lost_applies_exactly_once(
    window: Window,
    proxy: CommitProxy,
    proxied: async_sessionmaker[AsyncSession],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    source = await open_account(sessions, 1_000)
    destination = await open_account(sessions, 0)
    before = await _stored(sessions)
    proxy.armed = window

    record = await TransferService(proxied).transfer(
        source.id, destination.id, 250, idempotency_key="lost-answer"
    )

    assert proxy.cut == [window]
    assert await _stored(sessions) == before + 1
    async with sessions() as session:
        stored = await session.scalar(
            select(Transfer).where(Transfer.idempotency_key == "lost-answer")
        )
    assert stored is not None
    assert stored.id == record.id
    assert not record.replayed
    again = await TransferService(proxied).transfer(
        source.id, destination.id, 250, idempotency_key="lost-answer"
    )
    assert again.id == record.id
    assert again.replayed


@pytest.mark.parametrize(("window", "committed"), [("before", 0), ("after", 1)])
async def test_a_transfer_without_key_whose_commit_answer_is_lost_is_outcome_unknown(
    window: Window,
    committed: int,
    proxy: CommitProxy,
    proxied: async_sessionmaker[AsyncSession],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    source = await open_account(sessions, 1_000)
    destination = await open_account(sessions, 0)
    before = await _stored(sessions)
    proxy.armed = window

    with pytest.raises(OutcomeUnknown, match="no idempotency key"):
        await TransferService(proxied).transfer(source.id, destination.id, 250)

    assert proxy.cut == [window]
    assert await _stored(sessions) == before + committed
