"""What every money-moving POST shares: the answer, and the idempotent replay."""

from __future__ import annotations

from typing import Final

from fastapi import Response

from api.schemas import TransferOut
from services import TransferRecord, validation
from services.errors import IdempotencyConflict

REPLAY_HEADER: Final = "Idempotent-Replayed"
MONEY_RESPONSES: Final[dict[int | str, dict[str, object]]] = {
    201: {
        "description": "The movement committed, or (with the same Idempotency-Key and body) "
        f"the original answer again, with `{REPLAY_HEADER}: true`",
        "headers": {
            REPLAY_HEADER: {
                "description": "true when this answer repeats the original of this key",
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
    }
}


def answer(
    record: TransferRecord, response: Response, key: str, description: str | None
) -> TransferOut:
    """The 201 body; on a replay, the replay header, or 422 if the body differs.

    The services compare accounts and amount; the HTTP rule is "same body", so a replay
    whose description differs from the original's is refused as a reused key too.
    """
    if record.replayed:
        if record.description != validation.description(description):
            raise IdempotencyConflict(key)
        response.headers[REPLAY_HEADER] = "true"
    return TransferOut.model_validate(record)
