"""The OpenAPI document is checked in (docs/openapi.json, regenerated on purpose with
`make openapi`), describes the problems and the Idempotency-Key, and /docs works offline."""

from __future__ import annotations

import json
import re

import httpx

from api.openapi import render
from tests.support.paths import PROJECT_ROOT

CHECKED_IN = PROJECT_ROOT / "docs" / "openapi.json"
MONEY = ("/transfers", "/accounts/{account_id}/deposits", "/accounts/{account_id}/withdrawals")


def test_the_document_is_the_checked_in_copy() -> None:
    assert json.loads(render()) == json.loads(CHECKED_IN.read_text()), (
        "the API changed: run `make openapi` and commit docs/openapi.json"
    )


def test_every_error_response_is_a_problem_document() -> None:
    document = json.loads(render())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert "500" in errors, (method, path)
            for status, response in errors.items():
                assert list(response["content"]) == ["application/problem+json"], (path, status)


def test_money_moving_posts_document_the_idempotency_key_and_the_replay() -> None:
    document = json.loads(render())
    for path in MONEY:
        operation = document["paths"][path]["post"]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert "Idempotency-Key" in headers
        assert {"400", "409", "422"} <= set(operation["responses"])
        assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))], sources
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200, source
