"""Use case: everything a user's dashboard shows, read concurrently.

Each query runs in its own session and read-only transaction, because one AsyncSession
(one connection) cannot serve two tasks at once; a semaphore bounds how many run at the
same time, so a burst of dashboards queues here instead of exhausting the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from repositories import (
    AccountOwner,
    AccountRepository,
    ActivityRepository,
    CurrencyTotals,
    NotificationRepository,
    UserRepository,
)
from services import validation
from services.errors import InvalidInput, UserNotFound
from services.notifications import NotificationRecord
from services.results import AccountRecord, TransferRecord, UserRecord
from services.transactions import Sessions, deadline, run_in_transaction

T = TypeVar("T")

DEFAULT_MAX_CONCURRENCY: Final = 4
MAX_IDS: Final = 1000


@dataclass(frozen=True, slots=True)
class CurrencySummary:
    """One currency across the user's accounts. A transfer between two of the user's
    own accounts counts as sent, as received and as two movements."""

    currency: str
    accounts: int
    balance: int
    received: int
    sent: int
    movements: int

    @classmethod
    def of(cls, totals: CurrencyTotals) -> CurrencySummary:
        """Copy a row of per-currency totals."""
        return cls(*totals)


@dataclass(frozen=True, slots=True)
class Counterparty:
    """The account on the other side of a transfer and who holds it (not its balance)."""

    account_id: int
    currency: str
    owner_id: int
    owner_name: str

    @classmethod
    def of(cls, owner: AccountOwner) -> Counterparty:
        """Copy an account-owner row."""
        return cls(*owner)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A user's page: who, which accounts, what happened lately, and totals per currency."""

    user: UserRecord
    accounts: tuple[AccountRecord, ...]
    recent_transfers: tuple[TransferRecord, ...]
    counterparties: tuple[Counterparty, ...]
    summary: tuple[CurrencySummary, ...]
    notifications: tuple[NotificationRecord, ...]


class DashboardService:
    """Read-side views assembled from several queries run side by side.

    `max_concurrency` bounds the queries of this service in flight at once, across
    all its callers; keep it below DB_POOL_SIZE so other work still finds connections.
    """

    def __init__(
        self, sessions: Sessions, *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    ) -> None:
        if isinstance(max_concurrency, bool) or not 1 <= max_concurrency <= 100:
            raise InvalidInput("max_concurrency must be a whole number from 1 to 100")
        self._sessions = sessions
        self._slots = asyncio.Semaphore(max_concurrency)

    async def _read(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._slots:
            return await run_in_transaction(self._sessions, work, read_only=True)

    async def for_user(
        self,
        user_id: int,
        *,
        recent: int = 10,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> Dashboard:
        """The dashboard of `user_id`; UserNotFound if there is no such user.

        Five queries run concurrently, then one more resolves the other side of the
        recent transfers (one IN query for all of them). The queries are separate
        transactions, so the parts are each consistent but may be a few milliseconds
        apart; a report that must balance to the cent (the auditor) reads in one.
        """
        validation.identifier(user_id, "user id")
        limit = validation.page_limit(recent, maximum=100)

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
            return tuple(CurrencySummary.of(r) for r in rows)

        async def notifications(session: AsyncSession) -> tuple[NotificationRecord, ...]:
            rows = await NotificationRepository(session).recent_for_user(user_id, limit=limit)
            return tuple(NotificationRecord.of(n) for n in rows)

        async with deadline(timeout):
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
        concurrently they run; one IN query costs one. Unknown ids are absent.
        """
        if isinstance(account_ids, str | bytes) or not isinstance(account_ids, Collection):
            raise InvalidInput(
                f"account_ids must be a collection of ids, got {type(account_ids).__name__}"
            )
        ids = {validation.identifier(i, "account id") for i in account_ids}
        if len(ids) > MAX_IDS:
            raise InvalidInput(f"at most {MAX_IDS} account ids at a time, got {len(ids)}")
        if not ids:
            return {}

        async def work(session: AsyncSession) -> dict[int, Counterparty]:
            rows = await ActivityRepository(session).owners(ids)
            return {i: Counterparty.of(owner) for i, owner in rows.items()}

        return await self._read(work)


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf error of a (nested) exception group, to raise on its own."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
