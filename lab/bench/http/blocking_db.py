"""Variant 3's database access: blocking sqlite3 or psycopg, one connection per thread.

The same statements as bench/sql.py (the raw-driver variants) and bench/http/rows.py,
plus the token lookup and the idempotent transfer row the API's services write. Each
thread of FastAPI's pool opens its own connection on first use and keeps it.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import psycopg

from api.schemas import AccountOut, TransferOut
from lab.bench.http.rows import DB_SLEEP_SECONDS, account_out, timestamp
from lab.bench.ops import Op
from lab.bench.sql import ACCOUNT, SLEEP, Statements, render
from lab.bench.targets import Target
from lab.bench.variants import sqlite_work
from services.errors import AccountNotFound, InsufficientFunds, InvalidToken

CALLER: Final = (
    "SELECT u.id, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id "
    "WHERE t.token_hash = {} AND t.revoked_at IS NULL"
)
# Inserted first: a key already used stops the request before any balance moves.
RECORD: Final = (
    "INSERT INTO transfers (source_account_id, destination_account_id, amount, currency, "
    "idempotency_scope, idempotency_key, description, created_at) "
    "VALUES ({}, {}, {}, 'EUR', {}, {}, {}, {}) "
    "ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING RETURNING id"
)
EARLIER: Final = (
    "SELECT id, source_account_id, destination_account_id, amount, currency, "
    "idempotency_key, description, created_at FROM transfers "
    "WHERE idempotency_scope = {} AND idempotency_key = {}"
)
OWNER: Final = "SELECT owner_id FROM accounts WHERE id = {}"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a bearer token belongs to."""

    user_id: int
    operator: bool


class _Sql:
    def __init__(self, style: Any) -> None:
        self.legs = Statements(style)
        self.caller = render(CALLER, style)
        self.record = render(RECORD, style)
        self.earlier = render(EARLIER, style)
        self.owner = render(OWNER, style)
        self.account = render(ACCOUNT, style)
        self.sleep = render(SLEEP, style)


class BlockingLedger:
    """The routes' database work for one database URL (SQLite file or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self._target = Target(url)
        self._sqlite = self._target.backend == "sqlite"
        self._sql = _Sql("qmark" if self._sqlite else "format")
        self._begin = "BEGIN IMMEDIATE" if self._sqlite else "BEGIN"
        self._local = threading.local()

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self._sqlite:
                connection = sqlite_work.connect(self._target.sqlite_path)
            else:
                connection = psycopg.connect(self._target.postgres_dsn, autocommit=True)
            self._local.connection = connection
        return connection

    def caller(self, token: str) -> Caller:
        """The token's user; InvalidToken (401) for anything else."""
        wanted = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        row = self._connection().execute(self._sql.caller, (wanted,)).fetchone()
        if row is None:
            raise InvalidToken("the API token is not valid (unknown or revoked)")
        return Caller(int(row[0]), row[1] == "operator")

    def account(
        self, caller: Caller | None, account_id: int, *, db_sleep: bool = False
    ) -> AccountOut:
        """One account row; another user's reads as not found (None: no caller check)."""
        connection = self._connection()
        if db_sleep:
            connection.execute(self._sql.sleep, (DB_SLEEP_SECONDS,))
        row = connection.execute(self._sql.account, (account_id,)).fetchone()
        if row is None or (caller is not None and not caller.operator and row[1] != caller.user_id):
            raise AccountNotFound(account_id)
        return account_out(row)

    def transfer(
        self, caller: Caller, op: Op, key: str, description: str | None
    ) -> tuple[TransferOut, bool]:
        """Move op.amount in one transaction; (the transfer, whether it is a replay)."""
        scope = f"user:{caller.user_id}"
        now = datetime.now(UTC)
        connection = self._connection()
        connection.execute(self._begin)
        try:
            owner = connection.execute(self._sql.owner, (op.account,)).fetchone()
            if owner is None or owner[0] != caller.user_id:
                raise AccountNotFound(op.account)
            stored = now.replace(tzinfo=None) if self._sqlite else now
            params = (*self._sql.legs.record_params(op), scope, key, description, stored)
            inserted = connection.execute(self._sql.record, params).fetchone()
            if inserted is None:
                connection.execute("ROLLBACK")
                return self._earlier(scope, key), True
            for statement, leg in self._sql.legs.legs(op):
                if connection.execute(statement, leg).rowcount != 1:
                    if statement == self._sql.legs.debit:
                        raise InsufficientFunds(op.account, 0, op.amount)
                    raise AccountNotFound(op.other)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return (
            TransferOut(
                id=int(inserted[0]),
                kind="transfer",
                source_account_id=op.account,
                destination_account_id=op.other,
                amount=op.amount,
                currency="EUR",
                idempotency_key=key,
                description=description,
                created_at=now,
            ),
            False,
        )

    def _earlier(self, scope: str, key: str) -> TransferOut:
        row = self._connection().execute(self._sql.earlier, (scope, key)).fetchone()
        return TransferOut(
            id=row[0],
            kind="transfer",
            source_account_id=row[1],
            destination_account_id=row[2],
            amount=row[3],
            currency=row[4],
            idempotency_key=row[5],
            description=row[6],
            created_at=timestamp(row[7]),
        )
