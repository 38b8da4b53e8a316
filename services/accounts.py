"""Use cases for accounts: open, deposit, withdraw, read balance and history."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Final

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from models import Account, Transfer
from repositories import AccountRepository, TransferRepository, UserRepository, account_row
from services import validation
from services.base import Service
from services.errors import AccountNotFound, UserNotFound
from services.results import AccountRecord, HistoryPage, TransferRecord
from services.transactions import run_in_transaction, run_read, streaming_read
from services.transfer_core import TransferRequest, execute_transfer

# Rows a history stream fetches per round trip (or, on SQLite, per thread crossing).
STREAM_BATCH: Final = 500
MAX_STREAM_BATCH: Final = 10_000


class AccountService(Service):
    """Accounts and the money that enters or leaves the ledger through them, for one
    caller (default: the trusted in-process SYSTEM; see services/callers.py)."""

    async def open(
        self,
        owner_id: int,
        currency: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> AccountRecord:
        """Open an empty account for an existing user (a user: only for themselves)."""
        validation.identifier(owner_id, "owner id")
        code = validation.currency(currency)
        self._caller.require_authenticated()

        async def work(session: AsyncSession) -> AccountRecord:
            if (
                not self._caller.may_read_user(owner_id)
                or await UserRepository(session).get(owner_id) is None
            ):
                raise UserNotFound(owner_id)
            account = await AccountRepository(session).add(
                Account(owner_id=owner_id, currency=code, balance=0)
            )
            return AccountRecord.of(account)

        return await run_in_transaction(self._sessions, work, timeout=self._deadline(timeout))

    async def get(
        self,
        account_id: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> AccountRecord:
        """The account with this id, or AccountNotFound (also for another user's account)."""
        validation.identifier(account_id, "account id")
        self._caller.require_authenticated()

        # A Core read in one greenlet (run_read): GET /accounts/{id} is a hot path.
        def work(connection: Connection) -> AccountRecord:
            row = account_row(connection, account_id)
            if row is None or not self._caller.may_read_user(row.owner_id):
                raise AccountNotFound(account_id)
            return AccountRecord(
                id=row.id,
                owner_id=row.owner_id,
                currency=row.currency,
                balance=row.balance,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )

        return await run_read(
            self._sessions, work, one_statement=True, timeout=self._deadline(timeout)
        )

    async def for_owner(
        self,
        owner_id: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> list[AccountRecord]:
        """Every account of a user, oldest first; UserNotFound if there is no such user
        (or it is another user than the calling one)."""
        validation.identifier(owner_id, "owner id")
        self._caller.require_authenticated()

        async def work(session: AsyncSession) -> list[AccountRecord]:
            if (
                not self._caller.may_read_user(owner_id)
                or await UserRepository(session).get(owner_id) is None
            ):
                raise UserNotFound(owner_id)
            return [
                AccountRecord.of(a) for a in await AccountRepository(session).for_owner(owner_id)
            ]

        return await run_in_transaction(
            self._sessions, work, read_only=True, timeout=self._deadline(timeout)
        )

    async def balance(self, account_id: int) -> int:
        """The balance in minor units."""
        return (await self.get(account_id)).balance

    async def deposit(
        self,
        account_id: int,
        amount: int,
        idempotency_key: str | None = None,
        description: str | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> TransferRecord:
        """Money entering the ledger: a transfer with no source. Operators only
        (NotAllowed otherwise); into any account."""
        return await self._external(
            account_id,
            amount,
            idempotency_key,
            description,
            incoming=True,
            timeout=self._deadline(timeout),
        )

    async def withdraw(
        self,
        account_id: int,
        amount: int,
        idempotency_key: str | None = None,
        description: str | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> TransferRecord:
        """Money leaving the ledger: a transfer with no destination. InsufficientFunds if
        short; AccountNotFound for an account the caller does not own."""
        return await self._external(
            account_id,
            amount,
            idempotency_key,
            description,
            incoming=False,
            timeout=self._deadline(timeout),
        )

    async def _external(
        self,
        account_id: int,
        amount: int,
        idempotency_key: str | None,
        description: str | None,
        *,
        incoming: bool,
        timeout: float | None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> TransferRecord:
        """A movement whose other end is outside the ledger, made by the caller."""
        # Checked here too so that a bad id is reported as the caller named it.
        validation.identifier(account_id, "account id")
        source, destination = (None, account_id) if incoming else (account_id, None)
        request = TransferRequest.of(
            source,
            destination,
            amount,
            idempotency_key=idempotency_key,
            description=description,
            caller=self._caller,
        )
        return await execute_transfer(self._sessions, request, timeout=self._deadline(timeout))

    async def history(
        self,
        account_id: int,
        limit: int = 50,
        before: int | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> HistoryPage:
        """Transfers in and out of the account, newest first; page on with `before`."""
        validation.identifier(account_id, "account id")
        page_size = validation.page_limit(limit)
        if before is not None:
            validation.identifier(before, "before")
        self._caller.require_authenticated()

        async def work(session: AsyncSession) -> HistoryPage:
            account = await AccountRepository(session).get(account_id)
            if account is None or not self._caller.may_read_user(account.owner_id):
                raise AccountNotFound(account_id)
            # One row more than asked tells whether another page exists without a COUNT.
            rows = await TransferRepository(session).history(
                account_id, limit=page_size + 1, before_id=before
            )
            items = tuple(TransferRecord.of(t) for t in rows[:page_size])
            next_before = items[-1].id if len(rows) > page_size else None
            return HistoryPage(account_id=account_id, items=items, next_before=next_before)

        return await run_in_transaction(
            self._sessions,
            work,
            read_only=True,
            standby_ok=True,
            timeout=self._deadline(timeout),
        )

    @asynccontextmanager
    async def history_stream(
        self, account_id: int, *, batch_size: int = STREAM_BATCH
    ) -> AsyncIterator[AsyncIterator[TransferRecord]]:
        """The account's whole history, oldest first, as a stream: `async with
        service.history_stream(id) as transfers: async for t in transfers: ...`.

        Rows arrive `batch_size` at a time from one read-only snapshot, so memory stays
        flat however long the history is (for exports and audits). Entering the block
        checks the caller as `history` does (AccountNotFound for another user's account)
        before any row is read; the transaction lasts as long as the block.
        """
        validation.identifier(account_id, "account id")
        batch = validation.bounded_int(batch_size, "batch_size", MAX_STREAM_BATCH)
        self._caller.require_authenticated()
        async with streaming_read(self._sessions) as session:
            account = await AccountRepository(session).get(account_id)
            if account is None or not self._caller.may_read_user(account.owner_id):
                raise AccountNotFound(account_id)
            transfers = TransferRepository(session).stream_history(account_id, batch_size=batch)
            # Closed here, while the session is still open, however far the caller read.
            async with aclosing(_records(transfers)) as records:
                yield records


async def _records(transfers: AsyncGenerator[Transfer]) -> AsyncGenerator[TransferRecord]:
    async with aclosing(transfers):
        async for transfer in transfers:
            yield TransferRecord.of(transfer)
