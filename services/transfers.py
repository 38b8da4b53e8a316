"""Use case: move money between two accounts."""

from __future__ import annotations

from collections.abc import Sequence

from services.callers import SYSTEM, Caller
from services.results import TransferRecord
from services.transactions import Sessions
from services.transfer_core import (
    Outcome,
    TransferRequest,
    account_transfer,
    execute_transfer,
    execute_transfers,
    on_behalf_of,
)


class TransferService:
    """Atomic, idempotent transfers between accounts of one currency, for one caller
    (default: the trusted in-process SYSTEM; see services/callers.py)."""

    def __init__(self, sessions: Sessions, *, caller: Caller = SYSTEM) -> None:
        self._sessions = sessions
        self._caller = caller

    async def transfer(
        self,
        source_id: int,
        destination_id: int,
        amount: int,
        *,
        idempotency_key: str | None = None,
        description: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> TransferRecord:
        """Move `amount` minor units from `source_id` to `destination_id`.

        Both balance changes and the Transfer row commit together or not at all. With an
        `idempotency_key`, repeating the same request returns the original transfer and
        moves nothing; reusing the key for another request raises IdempotencyConflict.
        Keys are the caller's own: another caller's identical key is another request.
        With `timeout` (seconds), a transfer that takes longer is cancelled, rolled back
        and raises OperationTimeout.
        """
        request = account_transfer(source_id, destination_id, amount, idempotency_key, description)
        return await execute_transfer(
            self._sessions, on_behalf_of(self._caller, request), timeout=timeout
        )

    async def transfer_many(
        self,
        requests: Sequence[TransferRequest],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> list[Outcome]:
        """Apply several requests in one transaction, in order; each succeeds or fails alone.

        Returns one outcome per request: its TransferRecord, or the LedgerError it failed with.
        """
        mine = [on_behalf_of(self._caller, request) for request in requests]
        return await execute_transfers(self._sessions, mine, timeout=timeout)
