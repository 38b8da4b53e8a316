"""The OpenAPI document: FastAPI's, plus the problem responses on every operation.

FastAPI documents only the success body and its own validation error; every error here
is an application/problem+json document instead, so each operation lists the statuses
it can answer with and the `Problem` schema. The checked-in copy (docs/openapi.json,
`make openapi`) is compared with this in the tests.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import PROBLEM_JSON
from api.schemas import Problem

_PUBLIC = {("/users", "post"), ("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get")}
_MONEY = {"/transfers", "/accounts/{account_id}/deposits", "/accounts/{account_id}/withdrawals"}
_DESCRIPTIONS = {
    "400": "Bad request (e.g. no Idempotency-Key on a money-moving POST)",
    "401": "No valid bearer token (see WWW-Authenticate)",
    "403": "The caller's role does not allow this",
    "404": "No such resource, or one of another user",
    "409": "Refused by the ledger's rules (insufficient funds, currency mismatch, taken email)",
    "413": "The request body is too large",
    "415": "The request body is not application/json",
    "422": "The request does not validate, or an Idempotency-Key was reused for another body",
    "500": "Unexpected error (the problem names the request id)",
    "503": "The database is busy, out of connections, or the server is stopping (Retry-After)",
    "504": "The request ran past its deadline; nothing was half done",
}


def _statuses(path: str, method: str) -> list[str]:
    if path in ("/healthz", "/metrics"):
        return ["500"]
    statuses = {"413", "415", "422", "500", "503", "504"}
    if (path, method) not in _PUBLIC:
        statuses |= {"401", "403", "404"}
    if path in _MONEY:
        statuses |= {"400", "409"}
    if path == "/users":
        statuses.add("409")
    return sorted(statuses)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document, built once per app and cached on it."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    retry_after = {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method):
                entry: dict[str, Any] = {
                    "description": _DESCRIPTIONS[status],
                    "content": problem_content,
                }
                if status == "503":
                    entry["headers"] = retry_after
                responses[status] = entry
    app.openapi_schema = document
    return document


def render() -> str:
    """The document as checked in at docs/openapi.json (`make openapi`)."""
    from api.app import create_app
    from api.settings import ApiSettings

    return json.dumps(create_app(ApiSettings()).openapi(), indent=2, sort_keys=True) + "\n"
