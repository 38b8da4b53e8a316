"""The request's ledger: who calls, and the services that act for them.

One `Ledger` per request, built by a dependency: it holds the caller (or none, for the
routes anyone may call), the app's session factory and batcher, and the request's
deadline (API_REQUEST_TIMEOUT). Routes ask it for a ready service and call it; they choose
neither the write path nor the deadline. Who may do what stays the services' own
(services/callers.py). Building a service is cheap: it holds the factory and the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request

from api.auth import bearer_caller
from api.state import AppState
from services import (
    ANONYMOUS,
    AccessService,
    AccountService,
    Authenticated,
    BackOffice,
    Caller,
    DashboardService,
    TransferBatcher,
    TransferRecord,
    TransferService,
    UserRecord,
    UserService,
)


class Transfers(Protocol):
    """The write path of POST /transfers: group commit or one transaction per call."""

    async def transfer(
        self,
        source_id: int,
        destination_id: int,
        amount: int,
        *,
        idempotency_key: str | None = None,
        description: str | None = None,
    ) -> TransferRecord:
        """Move money, as TransferService.transfer."""
        ...


@dataclass(frozen=True, slots=True)
class _GroupCommitted:
    """TransferService.transfer through the process's batcher, for one caller."""

    batcher: TransferBatcher
    caller: Caller
    timeout: float

    async def transfer(
        self,
        source_id: int,
        destination_id: int,
        amount: int,
        *,
        idempotency_key: str | None = None,
        description: str | None = None,
    ) -> TransferRecord:
        return await self.batcher.transfer(
            source_id,
            destination_id,
            amount,
            idempotency_key=idempotency_key,
            description=description,
            timeout=self.timeout,
            caller=self.caller,
        )


@dataclass(frozen=True, slots=True)
class Ledger:
    """The services for this request's caller, each with the request's deadline."""

    state: AppState
    auth: Authenticated | None
    token: str | None = None  # the presented token (to revoke it)

    @property
    def caller(self) -> Caller:
        """Who the request acts for (ANONYMOUS without a token)."""
        return ANONYMOUS if self.auth is None else self.auth.caller

    @property
    def user(self) -> UserRecord:
        """The authenticated user (only on routes that require a token)."""
        assert self.auth is not None, "a route without a token has no user"
        return self.auth.user

    def _timeout(self) -> float:
        return self.state.settings.request_timeout

    def access(self) -> AccessService:
        """Registration and tokens."""
        return AccessService(
            self.state.sessions,
            caller=self.caller,
            timeout=self._timeout(),
            tokens=self.state.tokens,
        )

    def accounts(self) -> AccountService:
        """Accounts."""
        return AccountService(self.state.sessions, caller=self.caller, timeout=self._timeout())

    def users(self) -> UserService:
        """Users."""
        return UserService(self.state.sessions, caller=self.caller, timeout=self._timeout())

    def transfers(self) -> Transfers:
        """Transfers: group-committed by the batcher when it runs (API_BATCH_TRANSFERS)."""
        if self.state.batcher is not None:
            return _GroupCommitted(self.state.batcher, self.caller, self._timeout())
        return TransferService(self.state.sessions, caller=self.caller, timeout=self._timeout())

    def dashboards(self) -> DashboardService:
        """The dashboard."""
        return DashboardService(self.state.sessions, caller=self.caller, timeout=self._timeout())

    def back_office(self) -> BackOffice:
        """Operators' reads."""
        return BackOffice(self.state.sessions, caller=self.caller, timeout=self._timeout())


async def caller_ledger(
    request: Request, auth: Annotated[Authenticated, Depends(bearer_caller)]
) -> Ledger:
    """The ledger of an authenticated request (401 without a valid token)."""
    return Ledger(request.app.state.ledger, auth, getattr(request.state, "token", None))


async def public_ledger(request: Request) -> Ledger:
    """The ledger of a route anyone may call (no token: the ANONYMOUS caller)."""
    return Ledger(request.app.state.ledger, None)


CallerLedger = Annotated[Ledger, Depends(caller_ledger)]
PublicLedger = Annotated[Ledger, Depends(public_ledger)]
