"""The OpenAPI document is checked in (docs/openapi.json, regenerated on purpose with
`make openapi`), describes the problems and the Idempotency-Key, and /docs works offline
with a Swagger UI that reads OpenAPI 3.1 (in a browser: test_docs_page.py)."""

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


async def test_docs_serve_a_swagger_ui_that_reads_openapi_3_1(client: httpx.AsyncClient) -> None:
    # Swagger UI 4 answers a 3.1 document with "Unable to render this definition". Checked
    # here too, so that a machine without Chromium (the browser test skips) still notices.
    assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.1.")
    page = await client.get("/docs")
    (bundle,) = re.findall(r'src="([^"]*swagger-ui-bundle\.js)"', page.text)
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.', (await client.get(bundle)).text)
    assert version, "no version in the Swagger UI bundle"
    assert int(version[1]) >= 5, version[0]
