"""Use case: everything a user's dashboard shows, read concurrently.

Each query runs in its own session and read-only transaction, because one AsyncSession
(one connection) cannot serve two tasks at once; a limit shared by every DashboardService
over the same engine (services/query_limit.py) bounds how many run at the same time, so a
burst of dashboards queues here instead of exhausting the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from repositories import (
    AccountRepository,
    ActivityRepository,
    NotificationRepository,
    UserRepository,
)
from services import validation
from services.base import Service
from services.callers import SYSTEM, Caller
from services.errors import UserNotFound
from services.query_limit import shared_limit
from services.results import (
    AccountRecord,
    Counterparty,
    CurrencySummary,
    Dashboard,
    NotificationRecord,
    TransferRecord,
    UserRecord,
)
from services.transactions import Sessions, deadline, run_in_transaction

T = TypeVar("T")

DEFAULT_MAX_CONCURRENCY: Final = 4
MAX_CONCURRENCY: Final = 100
MAX_IDS: Final = 1000


class DashboardService(Service):
    """Read-side views assembled from several queries run side by side.

    `max_concurrency` bounds the dashboard queries in flight at once across every
    DashboardService over the same engine in this process (one built per request
    included); keep it below DB_POOL_SIZE so other work still finds connections.
    """

    def __init__(
        self,
        sessions: Sessions,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        caller: Caller = SYSTEM,
        timeout: float | None = None,
    ) -> None:
        super().__init__(sessions, caller=caller, timeout=timeout)
        self.limit = shared_limit(
            sessions, validation.bounded(max_concurrency, "max_concurrency", 1, MAX_CONCURRENCY)
        )

    async def _read(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.limit.slot():
            return await run_in_transaction(self._sessions, work, read_only=True, standby_ok=True)

    async def for_user(
        self,
        user_id: int,
        *,
        recent: int = 10,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> Dashboard:
        """The dashboard of `user_id`; UserNotFound if there is no such user (or it is
        another user than the calling one).

        Five queries run concurrently, then one more resolves the other side of the
        recent transfers (one IN query for all of them). The queries are separate
        transactions, so the parts are each consistent but may be a few milliseconds
        apart; a report that must balance to the cent (the auditor) reads in one.
        """
        validation.identifier(user_id, "user id")
        limit = validation.page_limit(recent, maximum=100)
        if not self._caller.may_read_user(user_id):
            raise UserNotFound(user_id)

        async def user(session: AsyncSession) -> UserRecord | None:
            found = await UserRepository(session).get(user_id)
            return None if found is None else UserRecord.of(found)

        async def accounts(session: AsyncSession) -> tuple[AccountRecord, ...]:
            rows = await AccountRepository(session).for_owner(user_id)
            return tuple(AccountRecord.of(a) for a in rows)

        async def transfers(session: AsyncSession) -> tuple[TransferRecord, ...]:
            rows = await ActivityRepository(session).recent_for_owner(user_id, limit=limit)
            return tuple(TransferRecord.of(t) for t in rows)

        async def summary(session: AsyncSession) -> tuple[CurrencySummary, ...]:
            rows = await ActivityRepository(session).totals_for_owner(user_id)
            return tuple(CurrencySummary(*row) for row in rows)

        async def notifications(session: AsyncSession) -> tuple[NotificationRecord, ...]:
            rows = await NotificationRepository(session).recent_for_user(user_id, limit=limit)
            return tuple(NotificationRecord.of(n) for n in rows)

        async with deadline(self._deadline(timeout)):
            # A TaskGroup, not gather: if one query fails, the others are cancelled at
            # once instead of running on, each holding a connection.
            try:
                async with asyncio.TaskGroup() as group:
                    user_task = group.create_task(self._read(user))
                    accounts_task = group.create_task(self._read(accounts))
                    transfers_task = group.create_task(self._read(transfers))
                    summary_task = group.create_task(self._read(summary))
                    notifications_task = group.create_task(self._read(notifications))
            except BaseExceptionGroup as failed:
                raise first_error(failed) from None
            found, owned = user_task.result(), accounts_task.result()
            recent_transfers = transfers_task.result()
            if found is None:
                raise UserNotFound(user_id)
            own = {a.id for a in owned}
            others = {
                account_id
                for t in recent_transfers
                for account_id in (t.source_account_id, t.destination_account_id)
                if account_id is not None and account_id not in own
            }
            owners = await self.account_owners(others)
        return Dashboard(
            user=found,
            accounts=owned,
            recent_transfers=recent_transfers,
            counterparties=tuple(owners[i] for i in sorted(owners)),
            summary=summary_task.result(),
            notifications=notifications_task.result(),
        )

    async def account_owners(self, account_ids: Collection[int]) -> dict[int, Counterparty]:
        """Who holds each of `account_ids`, in one `IN` query (not one query per id).

        N lookups cost N transactions and N connections from the pool, however
        concurrently they run; one IN query costs one. Unknown ids are absent, and so,
        for a user, is every account that is neither theirs nor on the other side of one
        of their transfers: account ids cannot be probed (services/callers.py).
        """
        ids = validation.identifiers(account_ids, "account id", MAX_IDS)
        self._caller.require_authenticated()
        if not ids:
            return {}
        visible_to = None if self._caller.reads_everything else self._caller.user_id

        async def work(session: AsyncSession) -> dict[int, Counterparty]:
            rows = await ActivityRepository(session).owners(ids, visible_to=visible_to)
            return {i: Counterparty(*row) for i, row in rows.items()}

        return await self._read(work)


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf error of a (nested) exception group, to raise on its own."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
