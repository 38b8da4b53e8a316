"""Use case: move money between two accounts."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Final

from services.base import Service
from services.callers import Caller
from services.errors import InvalidInput
from services.results import TransferRecord
from services.transfer_core import (
    Outcome,
    TransferRequest,
    execute_transfer,
    execute_transfers,
)


class TransferService(Service):
    """Atomic, idempotent transfers between accounts of one currency, for one caller
    (default: the trusted in-process SYSTEM; see services/callers.py)."""

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
        request = TransferRequest.of(
            source_id,
            destination_id,
            amount,
            idempotency_key=idempotency_key,
            description=description,
            caller=self._caller,
            accounts_only=True,
        )
        return await execute_transfer(self._sessions, request, timeout=self._deadline(timeout))

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
        mine = [_checked(request, self._caller) for request in requests]
        return await execute_transfers(self._sessions, mine, timeout=self._deadline(timeout))


# What a caller supplies, by name, so a parameter added to of() is re-checked too; the
# scope and the source's owner are the service's to set (from its caller), never the
# caller's, as are of()'s service-side options.
_SERVICE_SIDE: Final = frozenset({"caller", "accounts_only"})
_CALLER_FIELDS: Final = tuple(
    name for name in inspect.signature(TransferRequest.of).parameters if name not in _SERVICE_SIDE
)


def _checked(request: object, caller: Caller) -> TransferRequest:
    if not isinstance(request, TransferRequest):
        raise InvalidInput(
            f"each request must be a TransferRequest (build it with TransferRequest.of), "
            f"got {type(request).__name__}"
        )
    # A request built with the dataclass constructor skipped of()'s checks: run them.
    fields = {name: getattr(request, name) for name in _CALLER_FIELDS}
    return TransferRequest.of(**fields, caller=caller)
