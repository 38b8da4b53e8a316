"""What every money-moving POST shares: the answer, and the idempotent replay."""

from __future__ import annotations

from typing import Final

from fastapi import Response

from api.schemas import TransferOut
from services import TransferRecord

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


def answer(record: TransferRecord, response: Response) -> TransferOut:
    """The 201 body; on a replay, with the replay header. A reused key whose request
    differs (accounts, amount or description) never gets here: the service refuses it
    (IdempotencyConflict, 422), for every interface alike."""
    if record.replayed:
        response.headers[REPLAY_HEADER] = "true"
    return TransferOut.model_validate(record)
