"""One rule, one message: a value the services refuse gets the services' own words over
HTTP (services/validation.py), the same line `ledgerctl` prints, not a schema library's."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from services import validation
from services.errors import LedgerError
from tests.api.conftest import Actor, new_actor


def _services_message(check: Callable[[object], object], value: object) -> str:
    with pytest.raises(LedgerError) as refused:
        check(value)
    return str(refused.value)


@pytest.mark.parametrize("currency", ["eur", "EURO", "QQQ"])
async def test_a_refused_currency_reads_as_the_service_says(
    client: httpx.AsyncClient, currency: str
) -> None:
    ada = await new_actor(client)

    refused = await client.post("/accounts", json={"currency": currency}, headers=ada.headers)

    assert refused.status_code == 422
    assert refused.json()["type"].endswith(":invalid-currency")
    assert refused.json()["detail"] == _services_message(validation.currency, currency)


@pytest.mark.parametrize("amount", [0, -5, 2**63, 2**64])
async def test_a_refused_amount_reads_as_the_service_says(
    client: httpx.AsyncClient, amount: int
) -> None:
    ada: Actor = await new_actor(client)
    bob: Actor = await new_actor(client)

    refused = await client.post(
        "/transfers",
        json={
            "source_account_id": ada.account_id,
            "destination_account_id": bob.account_id,
            "amount": amount,
        },
        headers={**ada.headers, "Idempotency-Key": f"amount-{amount}"},
    )

    assert refused.status_code == 422
    assert refused.json()["type"].endswith(":invalid-amount")
    assert refused.json()["detail"] == _services_message(validation.amount, amount)
