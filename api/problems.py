"""The one table from errors to HTTP: status, problem type and title (RFC 9457).

Every error leaves the API as `application/problem+json`: the services' typed
`LedgerError`s through `LEDGER_PROBLEMS` (the most specific class in an error's MRO
wins), the HTTP layer's own refusals through `HTTP_PROBLEMS`. Nothing else decides a
status code, so the table is the documentation: docs/api.md prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fastapi.responses import JSONResponse

from services.errors import (
    AccountNotFound,
    BatcherClosed,
    CurrencyMismatch,
    DatabaseBusy,
    DatabaseUnavailable,
    DuplicateEmail,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidCurrency,
    InvalidEmail,
    InvalidId,
    InvalidInput,
    InvalidText,
    InvalidToken,
    LedgerError,
    NotAllowed,
    NotFound,
    OperationTimeout,
    OutcomeUnknown,
    PoolExhausted,
    SameAccount,
    SchemaNotMigrated,
    StorageFull,
    UserNotFound,
)

PROBLEM_JSON: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:async-ledger:problem:"
RETRY_AFTER_SECONDS: Final = 1


@dataclass(frozen=True, slots=True)
class ProblemKind:
    """How one kind of error looks over HTTP."""

    status: int
    slug: str
    title: str
    retry_after: bool = False

    @property
    def type(self) -> str:
        """The problem type URI."""
        return f"{TYPE_PREFIX}{self.slug}"


LEDGER_PROBLEMS: Final[dict[type[LedgerError], ProblemKind]] = {
    InvalidInput: ProblemKind(422, "invalid-input", "The request is not valid"),
    InvalidAmount: ProblemKind(422, "invalid-amount", "The amount is not valid"),
    InvalidCurrency: ProblemKind(422, "invalid-currency", "Unknown currency"),
    InvalidEmail: ProblemKind(422, "invalid-email", "The email address is not valid"),
    InvalidText: ProblemKind(422, "invalid-text", "A text field is not valid"),
    InvalidId: ProblemKind(422, "invalid-id", "An id is not valid"),
    SameAccount: ProblemKind(422, "same-account", "Source and destination are the same"),
    IdempotencyConflict: ProblemKind(
        422, "idempotency-key-reused", "The Idempotency-Key was used for another request"
    ),
    NotFound: ProblemKind(404, "not-found", "Not found"),
    AccountNotFound: ProblemKind(404, "account-not-found", "No such account"),
    UserNotFound: ProblemKind(404, "user-not-found", "No such user"),
    InsufficientFunds: ProblemKind(409, "insufficient-funds", "Insufficient funds"),
    CurrencyMismatch: ProblemKind(409, "currency-mismatch", "The accounts hold other currencies"),
    DuplicateEmail: ProblemKind(409, "email-taken", "A user with this email exists"),
    NotAllowed: ProblemKind(403, "forbidden", "Not allowed for this caller"),
    InvalidToken: ProblemKind(401, "unauthorized", "A valid API token is required"),
    DatabaseBusy: ProblemKind(503, "database-busy", "The database is busy", retry_after=True),
    PoolExhausted: ProblemKind(
        503, "pool-exhausted", "No database connection is free", retry_after=True
    ),
    BatcherClosed: ProblemKind(503, "shutting-down", "The server is stopping", retry_after=True),
    DatabaseUnavailable: ProblemKind(
        503, "database-unavailable", "The database cannot be reached", retry_after=True
    ),
    # Money movements carry an Idempotency-Key, so the service resolves a lost COMMIT
    # itself; this is what is left when the database was still away: retry with the key.
    OutcomeUnknown: ProblemKind(
        503,
        "outcome-unknown",
        "The commit's answer was lost; retry with the same key",
        retry_after=True,
    ),
    SchemaNotMigrated: ProblemKind(503, "not-migrated", "The database schema is not at head"),
    StorageFull: ProblemKind(
        503, "storage-full", "The database has no room to write", retry_after=True
    ),
    OperationTimeout: ProblemKind(504, "timeout", "The request ran past its deadline"),
    LedgerError: ProblemKind(500, "internal", "Internal error"),
}

HTTP_PROBLEMS: Final[dict[str, ProblemKind]] = {
    kind.slug: kind
    for kind in (
        ProblemKind(400, "idempotency-key-missing", "The Idempotency-Key header is required"),
        ProblemKind(400, "bad-request", "Bad request"),
        ProblemKind(401, "unauthorized", "A valid API token is required"),
        ProblemKind(404, "not-found", "Not found"),
        ProblemKind(405, "method-not-allowed", "Method not allowed"),
        ProblemKind(413, "body-too-large", "The request body is too large"),
        ProblemKind(415, "unsupported-media-type", "The request body must be application/json"),
        ProblemKind(422, "validation-error", "The request does not match the schema"),
        ProblemKind(500, "internal", "Internal error"),
    )
}


def kind_of(error: LedgerError) -> ProblemKind:
    """The table's entry for `error`: its most specific listed class."""
    for cls in type(error).__mro__:
        kind = LEDGER_PROBLEMS.get(cls)
        if kind is not None:
            return kind
    return LEDGER_PROBLEMS[LedgerError]


def for_ledger_error(error: LedgerError, *, request_id: str | None = None) -> JSONResponse:
    """The problem response for a service error, with its typed members."""
    kind = kind_of(error)
    extra: dict[str, Any] = {}
    if isinstance(error, InsufficientFunds):
        extra = {
            "account_id": error.account_id,
            "balance": error.balance,
            "requested": error.amount,
        }
    elif isinstance(error, AccountNotFound):
        extra = {"account_id": error.account_id}
    detail = "internal error" if kind.status == 500 else str(error)
    return problem(kind, detail, request_id=request_id, **extra)


def http_problem(
    slug: str, detail: str, *, request_id: str | None = None, **extra: Any
) -> JSONResponse:
    """A problem response of the HTTP layer's own (see HTTP_PROBLEMS)."""
    return problem(HTTP_PROBLEMS[slug], detail, request_id=request_id, **extra)


def problem(
    kind: ProblemKind,
    detail: str,
    *,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An application/problem+json response."""
    body: dict[str, Any] = {
        "type": kind.type,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        **extra,
    }
    if request_id is not None:
        body["request_id"] = request_id
    all_headers = dict(headers or {})
    if kind.retry_after:
        all_headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if kind.status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=kind.status, headers=all_headers, media_type=PROBLEM_JSON)


def documented_statuses() -> list[int]:
    """Every status a problem can have, for the OpenAPI document."""
    return sorted({k.status for k in (*LEDGER_PROBLEMS.values(), *HTTP_PROBLEMS.values())})
