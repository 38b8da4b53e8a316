"""The ledger a run serves: users with tokens and funded accounts; the audit after each run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models import Transfer
from services import SYSTEM, AccessService, AccountService, LedgerAuditor

OPENING_BALANCE = 10**12
# The PostgreSQL server is shared (other test suites run on it): when it is out of
# connections for a moment, the audit waits and tries again rather than losing the run.
AUDIT_ATTEMPTS: Final = 20


@dataclass(frozen=True, slots=True)
class Ledger:
    """User n holds token n and account n; request n moves 1 from account n to n + 1."""

    url: str
    tokens: list[str]
    accounts: list[int]

    @property
    def destinations(self) -> list[int]:
        """Each account's counterpart."""
        return self.accounts[1:] + self.accounts[:1]


async def prepare(url: str, users: int) -> Ledger:
    """Migrate the empty database at `url` and open the users' funded accounts."""
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        tokens, accounts = [], []
        for n in range(users):
            made = await AccessService(sessions, caller=SYSTEM).register(f"u{n}@example.com", "U")
            account = await AccountService(sessions).open(made.user.id, "EUR")
            await AccountService(sessions).deposit(account.id, OPENING_BALANCE)
            tokens.append(made.token)
            accounts.append(account.id)
        return Ledger(url, tokens, accounts)
    finally:
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class Audit:
    """The ledger audit's verdict and how many transfers carry the run's keys."""

    problems: tuple[str, ...]
    keyed_transfers: int

    @property
    def ok(self) -> bool:
        """Money conserved and every balance matching its history."""
        return not self.problems


async def audit(url: str, key_prefix: str) -> Audit:
    """Audit the ledger; count the transfers whose Idempotency-Key starts with `key_prefix`."""
    for attempt in range(1, AUDIT_ATTEMPTS + 1):
        try:
            return await _audit(url, key_prefix)
        except DBAPIError as exc:
            if attempt == AUDIT_ATTEMPTS or "too many clients" not in str(exc):
                raise
            await asyncio.sleep(1)  # waiting for another suite to free connections
    raise AssertionError("unreachable")


async def _audit(url: str, key_prefix: str) -> Audit:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        sessions = create_session_factory(engine)
        report = await LedgerAuditor(sessions).verify()
        async with sessions() as session:
            keyed = await session.scalar(
                select(func.count())
                .select_from(Transfer)
                .where(Transfer.idempotency_key.startswith(key_prefix, autoescape=True))
            )
        return Audit(tuple(report.problems), int(keyed or 0))
    finally:
        await engine.dispose()
