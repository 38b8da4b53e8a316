"""Request and response bodies. Requests are strict: ints are JSON integers only (no
strings, floats or booleans) and unknown fields are refused, both with a 422 problem."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.validation import CURRENCY_PATTERN, MAX_AMOUNT, MAX_ID

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# The currency and amount rules are the services' (services/validation.py): the schema
# documents them (json_schema_extra, not a constraint pydantic checks) so that a refusal
# reads the same over HTTP as from ledgerctl, in the services' words.
Amount = Annotated[
    int,
    Field(
        description="minor units, e.g. cents",
        json_schema_extra={"minimum": 1, "maximum": MAX_AMOUNT},
    ),
]
Currency = Annotated[str, Field(examples=["EUR"], json_schema_extra={"pattern": CURRENCY_PATTERN})]
# Text limits (lengths, control characters) are the services' (services/validation.py),
# which answer 422 too; repeating them here would be a second copy of each rule.
Description = str | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RegisterIn(_Strict):
    """A new user."""

    email: str
    name: str


class AccountIn(_Strict):
    """A new account of the calling user."""

    currency: Currency


class MoneyIn(_Strict):
    """A deposit or a withdrawal."""

    amount: Amount
    description: Description = None


class TransferIn(_Strict):
    """Money from one of the caller's accounts to any account of the same currency."""

    source_account_id: Id
    destination_account_id: Id
    amount: Amount
    description: Description = None


class UserOut(_Out):
    """A user."""

    id: int
    email: str
    name: str
    role: Literal["user", "operator"]
    created_at: datetime


class RegisteredOut(BaseModel):
    """The new user and their API token, shown only this once."""

    user: UserOut
    token: str


class AccountOut(_Out):
    """An account and its balance when read."""

    id: int
    owner_id: int
    currency: str
    balance: int
    created_at: datetime
    updated_at: datetime


class TransferOut(_Out):
    """A committed money movement."""

    id: int
    kind: Literal["deposit", "withdrawal", "transfer"]
    source_account_id: int | None
    destination_account_id: int | None
    amount: int
    currency: str
    idempotency_key: str | None
    description: str | None
    created_at: datetime


class HistoryOut(BaseModel):
    """One page of an account's transfers, newest first; `next` is the next page's URL."""

    items: list[TransferOut]
    next: str | None


class CounterpartyOut(_Out):
    """The other side of a transfer."""

    account_id: int
    currency: str
    owner_id: int
    owner_name: str


class SummaryOut(_Out):
    """One currency across the caller's accounts."""

    currency: str
    accounts: int
    balance: int
    received: int
    sent: int
    movements: int


class NotificationOut(_Out):
    """A message about money received."""

    id: int
    transfer_id: int
    message: str
    created_at: datetime


class DashboardOut(_Out):
    """The caller's page."""

    user: UserOut
    accounts: list[AccountOut]
    recent_transfers: list[TransferOut]
    counterparties: list[CounterpartyOut]
    summary: list[SummaryOut]
    notifications: list[NotificationOut]


class JobStatsOut(_Out):
    """The job queue by status."""

    queued: int
    due: int
    running: int
    expired_leases: int
    done: int
    dead: int


class AuditOut(BaseModel):
    """The auditor's verdict."""

    ok: bool
    accounts_checked: int
    transfers_checked: int
    deposits: int
    withdrawals: int
    balances_total: int
    problems: list[str]


class StatusOut(BaseModel):
    """A health answer."""

    status: Literal["ok", "ready"]
    revision: str | None = None


class Problem(BaseModel):
    """An RFC 9457 problem document (application/problem+json)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None
    account_id: int | None = None
    balance: int | None = Field(None, description="insufficient-funds: what the account holds")
    requested: int | None = Field(None, description="insufficient-funds: the amount asked for")
    errors: list[dict[str, Any]] | None = Field(None, description="validation-error: each field")
