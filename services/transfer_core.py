"""The one implementation of the transfer rules, applied to a batch of requests.

A deposit, a withdrawal and an account-to-account transfer are all a `TransferRequest`;
`transfer()` is a batch of one and group commit (TransferBatcher) a batch of many, so the
rules live only here. Within a batch, requests take effect in order and each succeeds or
fails on its own, exactly as if they had been applied one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from models import Transfer, utcnow
from repositories import (
    AccountRepository,
    LockedAccount,
    Movement,
    NewTransfer,
    TransferRepository,
)
from services import outbox, validation
from services.callers import SYSTEM_SCOPE, Caller
from services.errors import (
    AccountNotFound,
    CurrencyMismatch,
    DatabaseUnavailable,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    LedgerError,
    NotAllowed,
    OutcomeUnknown,
)
from services.results import TransferRecord
from services.transactions import Sessions, deadline, run_in_transaction

Outcome = TransferRecord | LedgerError
ScopedKey = tuple[str, str]
"""An idempotency key with the scope of the caller that chose it: (scope, key)."""


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """A validated request to move money. A None source is a deposit, a None destination a
    withdrawal. Build it with `TransferRequest.of(...)`, which checks every field.

    `idempotency_scope` is whose key it is (see services/callers.py); `source_owner_id`,
    when set, is the only user whose account may be the source: any other source is
    AccountNotFound, decided under the same lock as the balance.
    """

    source_id: int | None
    destination_id: int | None
    amount: int
    idempotency_key: str | None = None
    description: str | None = None
    idempotency_scope: str = SYSTEM_SCOPE
    source_owner_id: int | None = None

    @classmethod
    def of(
        cls,
        source_id: object,
        destination_id: object,
        amount: object,
        *,
        idempotency_key: object = None,
        description: object = None,
        caller: Caller | None = None,
        accounts_only: bool = False,
    ) -> TransferRequest:
        """Validate every field, raising a typed `InvalidInput` subclass on the first bad
        one. The one builder of requests: `accounts_only` requires both ends (a transfer,
        not a deposit or withdrawal); with `caller`, the request as that caller makes it:
        its key in the caller's scope, its source limited to the caller's own accounts,
        and NotAllowed (before any IO) for a deposit by a non-operator."""
        valid_amount = validation.amount(amount)
        source, destination = validation.transfer_ends(source_id, destination_id)
        key = validation.idempotency_key(idempotency_key)
        text = validation.description(description)
        if accounts_only:
            validation.both_ends(source, destination)
        if caller is None:
            return cls(source, destination, valid_amount, key, text)
        if source is None and not caller.may_deposit:
            raise NotAllowed(
                "only an operator may deposit: money enters the ledger through the back office"
            )
        return cls(
            source,
            destination,
            valid_amount,
            key,
            text,
            caller.idempotency_scope,
            caller.owner_filter(),
        )

    def matches(self, transfer: Transfer | TransferRecord | TransferRequest) -> bool:
        """Whether an earlier use of the same idempotency key asked for the same request:
        the same accounts, amount and description (as stored, trimmed). One rule for every
        interface; the HTTP API's "same body" is this."""
        if isinstance(transfer, TransferRequest):
            other = (
                transfer.source_id,
                transfer.destination_id,
                transfer.amount,
                transfer.description,
            )
        else:
            other = (
                transfer.source_account_id,
                transfer.destination_account_id,
                transfer.amount,
                transfer.description,
            )
        return (self.source_id, self.destination_id, self.amount, self.description) == other

    @property
    def scoped_key(self) -> ScopedKey | None:
        """(scope, key), or None without a key."""
        if self.idempotency_key is None:
            return None
        return (self.idempotency_scope, self.idempotency_key)

    @property
    def account_ids(self) -> tuple[int, ...]:
        """The accounts this request touches."""
        return tuple(i for i in (self.source_id, self.destination_id) if i is not None)


@dataclass(slots=True)
class _Plan:
    """What a batch will do, decided in memory while the accounts are locked."""

    outcomes: list[Outcome | None]
    accepted: list[tuple[int, NewTransfer]]
    repeats: list[tuple[int, int]]  # (request index, index of the earlier one with its key)
    balances: dict[int, int]


def _decide(
    requests: Sequence[TransferRequest],
    locked: dict[int, LockedAccount],
    existing: dict[ScopedKey, Transfer],
) -> _Plan:
    """Apply the transfer rules to each request in order, against in-memory balances."""
    plan = _Plan(
        outcomes=[None] * len(requests),
        accepted=[],
        repeats=[],
        balances={account.id: account.balance for account in locked.values()},
    )
    batch_keys: dict[ScopedKey, int] = {}  # keys taken earlier in this batch -> request index
    for index, request in enumerate(requests):
        key = request.scoped_key
        if key is not None and key in existing:
            earlier = existing[key]
            plan.outcomes[index] = (
                replace(TransferRecord.of(earlier), replayed=True)
                if request.matches(earlier)
                else IdempotencyConflict(key[1])
            )
            continue
        if key is not None and key in batch_keys:
            first = batch_keys[key]
            if request.matches(requests[first]):
                plan.repeats.append((index, first))
            else:
                plan.outcomes[index] = IdempotencyConflict(key[1])
            continue
        problem = _check(request, locked, plan.balances)
        if problem is not None:
            plan.outcomes[index] = problem
            continue
        if request.source_id is not None:
            plan.balances[request.source_id] -= request.amount
        if request.destination_id is not None:
            plan.balances[request.destination_id] += request.amount
        row = NewTransfer(
            source_account_id=request.source_id,
            destination_account_id=request.destination_id,
            amount=request.amount,
            currency=locked[request.account_ids[0]].currency,
            idempotency_scope=None if key is None else key[0],
            idempotency_key=request.idempotency_key,
            description=request.description,
        )
        plan.accepted.append((index, row))
        if key is not None:
            batch_keys[key] = index
    return plan


async def apply_transfers(
    session: AsyncSession, requests: Sequence[TransferRequest]
) -> list[Outcome]:
    """Apply `requests` in order inside the caller's transaction; one outcome per request.

    Round trips, whatever the batch size: lock the accounts (one query), then insert the
    new transfers, move every balance (one guarded UPDATE) and enqueue their outbox jobs
    (`TransferRepository.insert_and_apply`: one statement on PostgreSQL, three on
    SQLite). Balances are decided while holding the write lock, so there is
    no read-modify-write race. Idempotency keys are not looked up in advance: the insert
    skips rows whose key is taken, and only then, or when a request with a key would
    fail, are the keys read (one more IN query) and the batch decided again.
    """
    accounts_repo = AccountRepository(session)
    transfers_repo = TransferRepository(session)
    keys = {r.scoped_key for r in requests if r.scoped_key is not None}

    locked = await accounts_repo.lock({i for r in requests for i in r.account_ids})
    existing: dict[ScopedKey, Transfer] = {}
    looked_up = False
    created_at = utcnow()
    while True:
        plan = _decide(requests, locked, existing)
        if not looked_up and _keyed_failure(requests, plan):
            # A retry of a committed request must get the original back even if it would
            # fail now (e.g. the money has since moved on): check the keys before refusing.
            existing, looked_up = await transfers_repo.by_idempotency_keys(keys), True
            continue
        if not plan.accepted:
            break
        rows = [row for _, row in plan.accepted]
        written = await transfers_repo.insert_and_apply(
            rows,
            _movements(rows, locked),
            outbox.TRANSFERS_COMPLETED,
            created_at,
            outbox.TRANSFER_COMPLETED_EVENT,
        )
        if written is not None:
            outbox.enqueued(session)
            for (index, row), transfer_id in zip(plan.accepted, written.ids, strict=True):
                plan.outcomes[index] = _record(transfer_id, row, created_at)
            break
        # A key is taken: a client's retry, or a concurrent request that committed it
        # first. Every pass finds at least one more taken key among the batch's finite
        # set, so this loop ends; normally it does not run at all.
        existing, looked_up = await transfers_repo.by_idempotency_keys(keys), True

    for index, first in plan.repeats:
        first_outcome = plan.outcomes[first]
        assert isinstance(first_outcome, TransferRecord), "a repeat follows an accepted request"
        plan.outcomes[index] = replace(first_outcome, replayed=True)
    return [_decided(outcome) for outcome in plan.outcomes]


def _movements(
    rows: Sequence[NewTransfer], locked: dict[int, LockedAccount]
) -> dict[int, Movement]:
    """Each account's movement over the accepted rows: what the balance update applies
    to its balance and its kept totals (with the low halves read under the lock)."""
    legs: dict[int, list[int]] = {}  # account -> [received, sent, movements]
    for row in rows:
        if row.source_account_id is not None:
            leg = legs.setdefault(row.source_account_id, [0, 0, 0])
            leg[1] += row.amount
            leg[2] += 1
        if row.destination_account_id is not None:
            leg = legs.setdefault(row.destination_account_id, [0, 0, 0])
            leg[0] += row.amount
            leg[2] += 1
    return {
        i: Movement(r, s, n, locked[i].received_low, locked[i].sent_low)
        for i, (r, s, n) in legs.items()
    }


def _record(transfer_id: int, row: NewTransfer, created_at: datetime) -> TransferRecord:
    # The scope stays in the database: it is whose key it is, not part of the movement.
    return TransferRecord(
        id=transfer_id,
        source_account_id=row.source_account_id,
        destination_account_id=row.destination_account_id,
        amount=row.amount,
        currency=row.currency,
        idempotency_key=row.idempotency_key,
        description=row.description,
        created_at=created_at,
    )


def _keyed_failure(requests: Sequence[TransferRequest], plan: _Plan) -> bool:
    return any(
        isinstance(outcome, LedgerError) and request.idempotency_key is not None
        for request, outcome in zip(requests, plan.outcomes, strict=True)
    )


def _decided(outcome: Outcome | None) -> Outcome:
    assert outcome is not None, "every request gets an outcome"
    return outcome


def _check(
    request: TransferRequest, locked: dict[int, LockedAccount], balances: dict[int, int]
) -> LedgerError | None:
    origin = None if request.source_id is None else locked.get(request.source_id)
    if request.source_id is not None and (
        origin is None
        or (request.source_owner_id is not None and origin.owner_id != request.source_owner_id)
    ):
        # Someone else's account answers exactly like a missing one, and is answered
        # first, so that no error about the other account tells it exists.
        return AccountNotFound(request.source_id)
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
        return InsufficientFunds(
            request.source_id,
            balances[request.source_id],
            request.amount,
            locked[request.source_id].currency,
        )
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

    async with deadline(timeout):
        try:
            return await run_in_transaction(sessions, work)
        except OutcomeUnknown as unknown:
            return await _resolve(sessions, requests, unknown)


async def _resolve(
    sessions: Sessions, requests: Sequence[TransferRequest], unknown: OutcomeUnknown
) -> list[Outcome]:
    """After a COMMIT whose answer was lost: run the requests that have an idempotency key
    again, which finds each one committed (returned as it was) or applies it now, once.
    A request without a key cannot be told apart from a new one: it stays OutcomeUnknown.
    If the database is still away, the keyed ones stay unknown too (retry with the key).
    """
    keyed = [index for index, request in enumerate(requests) if request.scoped_key is not None]
    outcomes: list[Outcome] = [
        OutcomeUnknown(
            f"{unknown} (this transfer had no idempotency key: read the account's history "
            "before sending it again)"
        )
    ] * len(requests)
    if not keyed:
        return outcomes
    retried = [requests[index] for index in keyed]

    async def work(session: AsyncSession) -> list[Outcome]:
        return await apply_transfers(session, retried)

    try:
        again = await run_in_transaction(sessions, work)
    except (OutcomeUnknown, DatabaseUnavailable) as still:
        again = [OutcomeUnknown(f"{unknown}; not resolved yet: {still}")] * len(keyed)
    for index, outcome in zip(keyed, again, strict=True):
        # Resolved within the same call: to its caller this is the first answer.
        outcomes[index] = (
            replace(outcome, replayed=False) if isinstance(outcome, TransferRecord) else outcome
        )
    return outcomes


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
