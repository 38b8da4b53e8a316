"""Use case: move money between two accounts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

from services.errors import InvalidInput
from services.results import TransferRecord
from services.transactions import Sessions
from services.transfer_core import (
    Outcome,
    TransferRequest,
    account_transfer,
    execute_transfer,
    execute_transfers,
)


class TransferService:
    """Atomic, idempotent transfers between accounts of one currency."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

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
        With `timeout` (seconds), a transfer that takes longer is cancelled, rolled back
        and raises OperationTimeout.
        """
        request = account_transfer(source_id, destination_id, amount, idempotency_key, description)
        return await execute_transfer(self._sessions, request, timeout=timeout)

    async def transfer_many(
        self,
        requests: Sequence[TransferRequest],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (raises OperationTimeout)
    ) -> list[Outcome]:
        """Apply several requests in one transaction, in order; each succeeds or fails alone.

        Returns one outcome per request: its TransferRecord, or the LedgerError it failed with.
        A malformed batch (not a sequence of TransferRequest, or a request with a bad field)
        raises InvalidInput before anything is applied.
        """
        if isinstance(requests, str | bytes) or not isinstance(requests, Sequence):
            raise InvalidInput(
                f"requests must be a sequence of TransferRequest, got {type(requests).__name__}"
            )
        checked = [_checked(request) for request in requests]
        return await execute_transfers(self._sessions, checked, timeout=timeout)


def _checked(request: object) -> TransferRequest:
    if not isinstance(request, TransferRequest):
        raise InvalidInput(
            f"each request must be a TransferRequest (build it with TransferRequest.of), "
            f"got {type(request).__name__}"
        )
    # A request built with the dataclass constructor skipped of()'s checks: run them. Every
    # field by name, so a field added to TransferRequest (and to of()) is passed on too.
    return TransferRequest.of(**{f.name: getattr(request, f.name) for f in fields(request)})
