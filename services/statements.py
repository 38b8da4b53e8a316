"""The example consumer: a per-account statement built from `ledger.transfer.completed` events.

Each transfer event becomes one statement line per account it touched (money out negative,
money in positive) with the account's running balance as this read model sees it. Run it
with `ledgerctl consume` (or `EventConsumer(..., STATEMENTS, statement_handler())`); read it
with `StatementService`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from repositories import StatementRepository
from repositories.statements import NewLine
from services import validation
from services.cloud_events import CloudEvent
from services.errors import InvalidInput
from services.event_handler import EventHandler
from services.outbox import TRANSFER_COMPLETED_EVENT
from services.results import StatementLineRecord
from services.transactions import Sessions, run_in_transaction

STATEMENTS: Final = "statements"
"""The consumer's name: its inbox rows, its queue (`<namespace>.statements`)."""
TRANSFER_FIELDS: Final = (
    "transfer_id",
    "source_account_id",
    "destination_account_id",
    "amount",
    "currency",
)


@dataclass(frozen=True, slots=True)
class TransferEvent:
    """A `ledger.transfer.completed` event, checked."""

    event_id: str
    transfer_id: int
    source_account_id: int | None
    destination_account_id: int | None
    amount: int
    currency: str
    occurred_at: datetime


def parse_transfer_event(event: CloudEvent) -> TransferEvent:
    """The event's data, checked field by field (`InvalidInput` names what is wrong)."""
    data = event.data
    validation.event_fields(data, TRANSFER_FIELDS)
    if event.time is None:
        raise InvalidInput("a transfer event needs its time")
    source, destination = validation.transfer_ends(
        data["source_account_id"], data["destination_account_id"]
    )
    return TransferEvent(
        event_id=event.id,
        transfer_id=validation.identifier(data["transfer_id"], "transfer_id"),
        source_account_id=source,
        destination_account_id=destination,
        amount=validation.amount(data["amount"]),
        currency=validation.currency(data["currency"]),
        occurred_at=event.time,
    )


async def apply_statement_lines(session: AsyncSession, events: Sequence[TransferEvent]) -> None:
    """One line per account leg of each event, in order, each with its running balance."""
    repo = StatementRepository(session)
    accounts = {
        account
        for e in events
        for account in (e.source_account_id, e.destination_account_id)
        if account is not None
    }
    balances = await repo.balances(accounts)
    lines = []
    for event in events:
        for account, amount in (
            (event.source_account_id, -event.amount),
            (event.destination_account_id, event.amount),
        ):
            if account is None:
                continue
            balance = balances[account] = balances.get(account, 0) + amount
            lines.append(
                NewLine(
                    account,
                    event.transfer_id,
                    event.event_id,
                    amount,
                    balance,
                    event.currency,
                    event.occurred_at,
                )
            )
    await repo.add_many(lines)


def statement_handler() -> EventHandler:
    """The handler of the example consumer: transfer events into statement lines."""
    return EventHandler(
        types=frozenset({TRANSFER_COMPLETED_EVENT}),
        parse=parse_transfer_event,
        apply=apply_statement_lines,
    )


class StatementService:
    """Reads the statement read model."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def lines(self, account_id: int, *, limit: int = 50) -> list[StatementLineRecord]:
        """An account's latest `limit` statement lines, newest first."""
        account = validation.identifier(account_id, "account id")
        size = validation.page_limit(limit)

        async def work(session: AsyncSession) -> list[StatementLineRecord]:
            rows = await StatementRepository(session).lines(account, limit=size)
            return [StatementLineRecord.of(row) for row in rows]

        return await run_in_transaction(self._sessions, work, read_only=True)
