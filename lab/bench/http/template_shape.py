"""What both typical-template variants share: the answers they give, as the API's models."""

from __future__ import annotations

from typing import Final

from api.schemas import TransferOut
from models import Transfer

REPLAY_HEADER: Final = "Idempotent-Replayed"


def transfer_out(transfer: Transfer) -> TransferOut:
    """The 201 body of a transfer row."""
    return TransferOut(
        id=transfer.id,
        kind="transfer",
        source_account_id=transfer.source_account_id,
        destination_account_id=transfer.destination_account_id,
        amount=transfer.amount,
        currency=transfer.currency,
        idempotency_key=transfer.idempotency_key,
        description=transfer.description,
        created_at=transfer.created_at,
    )


async def healthz() -> dict[str, str]:
    """What the bench polls until the server is up."""
    return {"status": "ok"}
