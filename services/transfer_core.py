"""The one implementation of the transfer rules, applied to a batch of requests.

A deposit, a withdrawal and an account-to-account transfer are all a `TransferRequest`;
`transfer()` is a batch of one and group commit (TransferBatcher) a batch of many, so the
rules live only here. Within a batch, requests take effect in order and each succeeds or
fails on its own, exactly as if they had been applied one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import Transfer
from repositories import AccountRepository, LockedAccount, TransferRepository
from services import outbox, validation
from services.errors import (
    AccountNotFound,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidInput,
    LedgerError,
    SameAccount,
)
from services.results import TransferRecord
from services.transactions import Sessions, run_in_transaction

Outcome = TransferRecord | LedgerError


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """A validated request to move money. A None source is a deposit, a None destination a
    withdrawal. Build it with `TransferRequest.of(...)`, which checks every field."""

    source_id: int | None
    destination_id: int | None
    amount: int
    idempotency_key: str | None = None
    description: str | None = None

    @classmethod
    def of(
        cls,
        source_id: object,
        destination_id: object,
        amount: object,
        *,
        idempotency_key: object = None,
        description: object = None,
    ) -> TransferRequest:
        """Validate every field, raising a typed `InvalidInput` subclass on the first bad one."""
        valid_amount = validation.amount(amount)
        source = None if source_id is None else validation.identifier(source_id, "source id")
        destination = (
            None
            if destination_id is None
            else validation.identifier(destination_id, "destination id")
        )
        if source is None and destination is None:
            raise InvalidInput("a transfer needs a source or a destination account")
        if source is not None and source == destination:
            raise SameAccount(f"cannot transfer from account {source} to itself")
        return cls(
            source_id=source,
            destination_id=destination,
            amount=valid_amount,
            idempotency_key=validation.idempotency_key(idempotency_key),
            description=validation.description(description),
        )

    def matches(self, transfer: Transfer | TransferRecord | TransferRequest) -> bool:
        """Whether an earlier use of the same idempotency key asked for the same movement."""
        if isinstance(transfer, TransferRequest):
            other = (transfer.source_id, transfer.destination_id, transfer.amount)
        else:
            other = (
                transfer.source_account_id,
                transfer.destination_account_id,
                transfer.amount,
            )
        return (self.source_id, self.destination_id, self.amount) == other

    @property
    def account_ids(self) -> tuple[int, ...]:
        """The accounts this request touches."""
        return tuple(i for i in (self.source_id, self.destination_id) if i is not None)


async def apply_transfers(
    session: AsyncSession, requests: Sequence[TransferRequest]
) -> list[Outcome]:
    """Apply `requests` in order inside the caller's transaction; one outcome per request.

    Round trips, whatever the batch size: lock the accounts (one IN query), look up
    idempotency keys (one IN query, only if any request has a key), insert the new
    transfers (one multi-row INSERT … RETURNING), move every balance (one guarded
    UPDATE … RETURNING) and enqueue a `transfer.completed` job per new transfer (one
    multi-row INSERT: the transactional outbox). Balances are decided while holding the
    write lock, so there is no read-modify-write race.
    """
    accounts_repo = AccountRepository(session)
    transfers_repo = TransferRepository(session)

    locked = await accounts_repo.lock({i for r in requests for i in r.account_ids})
    existing = await transfers_repo.by_idempotency_keys(
        {r.idempotency_key for r in requests if r.idempotency_key is not None}
    )

    balances = {account.id: account.balance for account in locked.values()}
    outcomes: list[Outcome | None] = [None] * len(requests)
    accepted: list[tuple[int, Transfer]] = []
    # Keys accepted earlier in this batch, with the index of the request that took them.
    batch_keys: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []

    for index, request in enumerate(requests):
        key = request.idempotency_key
        if key is not None and key in existing:
            earlier = existing[key]
            outcomes[index] = (
                TransferRecord.of(earlier) if request.matches(earlier) else IdempotencyConflict(key)
            )
            continue
        if key is not None and key in batch_keys:
            first = batch_keys[key]
            if request.matches(requests[first]):
                repeats.append((index, first))
            else:
                outcomes[index] = IdempotencyConflict(key)
            continue
        problem = _check(request, locked, balances)
        if problem is not None:
            outcomes[index] = problem
            continue
        if request.source_id is not None:
            balances[request.source_id] -= request.amount
        if request.destination_id is not None:
            balances[request.destination_id] += request.amount
        currency = locked[request.account_ids[0]].currency
        accepted.append(
            (
                index,
                Transfer(
                    source_account_id=request.source_id,
                    destination_account_id=request.destination_id,
                    amount=request.amount,
                    currency=currency,
                    idempotency_key=key,
                    description=request.description,
                ),
            )
        )
        if key is not None:
            batch_keys[key] = index

    if accepted:
        await transfers_repo.add_many([transfer for _, transfer in accepted])
        deltas = {
            account_id: balances[account_id] - locked[account_id].balance
            for account_id in balances
            if balances[account_id] != locked[account_id].balance
        }
        applied = await accounts_repo.apply_deltas(deltas)
        if applied.keys() != deltas.keys():
            # Only possible if something wrote balances without holding the lock: fail the
            # whole transaction rather than commit a state we did not decide on.
            raise RuntimeError(f"guarded balance update refused accounts {deltas.keys() - applied}")
        await outbox.transfers_completed(session, [transfer.id for _, transfer in accepted])
        for index, transfer in accepted:
            outcomes[index] = TransferRecord.of(transfer)
    for index, first in repeats:
        outcomes[index] = outcomes[first]

    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _check(
    request: TransferRequest, locked: dict[int, LockedAccount], balances: dict[int, int]
) -> LedgerError | None:
    for account_id in request.account_ids:
        if account_id not in locked:
            return AccountNotFound(account_id)
    if request.source_id is not None and request.destination_id is not None:
        source, destination = locked[request.source_id], locked[request.destination_id]
        if source.currency != destination.currency:
            return CurrencyMismatch(
                f"account {source.id} holds {source.currency}, "
                f"account {destination.id} holds {destination.currency}"
            )
    if request.source_id is not None and balances[request.source_id] < request.amount:
        return InsufficientFunds(request.source_id, balances[request.source_id], request.amount)
    if (
        request.destination_id is not None
        and balances[request.destination_id] + request.amount > validation.MAX_AMOUNT
    ):
        return InvalidAmount(
            f"account {request.destination_id} cannot hold more than {validation.MAX_AMOUNT}"
        )
    return None


async def execute_transfers(
    sessions: Sessions,
    requests: Sequence[TransferRequest],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 (covers retries; raises OperationTimeout)
) -> list[Outcome]:
    """Apply a batch in its own transaction (retried as a whole when the database is busy).

    With `timeout`, past that many seconds the batch is cancelled and rolled back, and
    OperationTimeout raised.
    """

    async def work(session: AsyncSession) -> list[Outcome]:
        return await apply_transfers(session, requests)

    return await run_in_transaction(
        sessions, work, retry_also=_idempotency_key_race, timeout=timeout
    )


def _idempotency_key_race(exc: DBAPIError) -> bool:
    # On PostgreSQL two transactions can insert one new key for different accounts at
    # once: the loser fails on the unique index. Rerun, and the key is found and judged.
    return isinstance(exc, IntegrityError) and "idempotency_key" in str(exc.orig)


async def execute_transfer(
    sessions: Sessions,
    request: TransferRequest,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
) -> TransferRecord:
    """Apply one request; raise its error if it failed."""
    (outcome,) = await execute_transfers(sessions, [request], timeout=timeout)
    if isinstance(outcome, LedgerError):
        raise outcome
    return outcome
