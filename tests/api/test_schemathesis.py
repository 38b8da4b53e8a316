"""Property-based: schemathesis generates requests from the app's own OpenAPI document
and sends them to a real `ledgerctl serve`; no answer may be a 5xx, and every answer,
errors included, must match what the document says (status, content type, schema)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import render
from db import DatabaseSettings, create_engine, create_session_factory, migrations
from services import SYSTEM, AccessService, AccountService, Role
from tests.support.api_server import serving
from tests.support.backends import NewDatabase

# The token of the run is revoked by exactly one operation; it is tested elsewhere.
SCHEMA = schemathesis.openapi.from_dict(json.loads(render())).exclude(path="/tokens/current")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class Live:
    url: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
async def live(new_database: NewDatabase) -> AsyncIterator[Live]:
    """A server on its own database with an operator who owns account 1 (funded), so
    that generated ids find something to read and move."""
    url = await new_database()
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        made = await AccessService(sessions, caller=SYSTEM).register(
            "schema@example.com", "Schema", role=Role.OPERATOR
        )
        for currency in ("EUR", "EUR", "USD"):
            account = await AccountService(sessions).open(made.user.id, currency)
            await AccountService(sessions).deposit(account.id, 1_000_000)
    finally:
        await engine.dispose()
    async with serving(url) as server:
        yield Live(server.url, {"Authorization": f"Bearer {made.token}"})


@SCHEMA.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_document(case: schemathesis.Case[Any], live: Live) -> None:
    case.call_and_validate(base_url=live.url, headers=live.headers, checks=CHECKS, timeout=60)
