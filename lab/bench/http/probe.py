"""Before a server is measured: does it give the API's answers to the scenario's request?

Speed says nothing if the answers are wrong, so each server is first asked once (and a
transfer twice, with the same key: the second must be the replay of the first) and the
answer is checked against the API's response models, field for field.
"""

from __future__ import annotations

import secrets

import httpx

from api.schemas import AccountOut, TransferOut
from lab.bench.errors import BenchError
from lab.bench.http.ledger import Ledger
from lab.bench.http.wrk import Request


class WrongAnswer(BenchError):
    """A server answered the probe with something else than the API would."""


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise WrongAnswer(what)


async def probe(url: str, request: Request, ledger: Ledger, *, replays: bool) -> None:
    """Send `request` once as user 0 and check the answer (WrongAnswer if it is wrong)."""
    source, destination = ledger.accounts[0], ledger.destinations[0]
    headers = {"Authorization": f"Bearer {ledger.tokens[0]}"} if request.authenticated else {}
    path = request.path.replace("{account}", str(source))
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        if not request.transfer_body:
            answer = await client.get(path, headers=headers)
            _expect(answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}")
            account = AccountOut.model_validate(answer.json())
            _expect(set(answer.json()) == set(AccountOut.model_fields), f"GET {path}: fields")
            _expect(account.id == source, f"GET {path}: another account {account.id}")
            return
        body = {"source_account_id": source, "destination_account_id": destination, "amount": 1}
        headers["Idempotency-Key"] = f"probe-{secrets.token_hex(6)}"
        first = await client.post(path, json=body, headers=headers)
        _expect(first.status_code == 201, f"POST {path}: {first.status_code} {first.text}")
        _expect(set(first.json()) == set(TransferOut.model_fields), f"POST {path}: fields")
        made = TransferOut.model_validate(first.json())
        _expect(
            (made.source_account_id, made.destination_account_id, made.amount, made.kind)
            == (source, destination, 1, "transfer"),
            f"POST {path}: another transfer {first.text}",
        )
        if replays:
            again = await client.post(path, json=body, headers=headers)
            _expect(
                again.status_code == 201
                and again.headers.get("idempotent-replayed") == "true"
                and again.json()["id"] == made.id,
                f"POST {path} again with the key: {again.status_code} {again.text}",
            )
        refused = await client.post(path, json=body, headers={**headers, "Authorization": "x"})
        _expect(refused.status_code == 401, f"POST {path} without a token: {refused.status_code}")
