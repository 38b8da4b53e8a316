"""Queries over accounts, including the guarded balance update."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    String,
    Table,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from db.sqlite_one_hop import DEFERRED
from models import Account, UTCDateTime, utcnow
from repositories.base import Repository

# Built once: GET /accounts/{id} runs it per request (see account_row).
_ACCOUNT_BY_ID: Final = select(
    Account.id,
    Account.owner_id,
    Account.currency,
    Account.balance,
    Account.created_at,
    Account.updated_at,
).where(Account.id == bindparam("account_id"))


def account_row(
    connection: Connection, account_id: int
) -> Row[int, int, str, int, datetime, datetime] | None:
    """One account's columns (`id, owner_id, currency, balance, created_at, updated_at`),
    or None: a Core read on the caller's connection, inside its transaction."""
    return connection.execute(_ACCOUNT_BY_ID, {"account_id": account_id}).first()


LOW_BITS: Final = 32
_LOW_MASK: Final = 2**LOW_BITS - 1


class Movement(NamedTuple):
    """What a batch does to one account: money in, money out, transfers in or out; and,
    when known (read under the lock), the account's low halves of its kept totals."""

    received: int = 0
    sent: int = 0
    movements: int = 0
    received_low: int = 0
    sent_low: int = 0

    @property
    def delta(self) -> int:
        """The change of the balance."""
        return self.received - self.sent

    def parameters(self) -> tuple[int, int, int, int, int, int]:
        """(delta, received high, received low, sent high, sent low, movements): what the
        UPDATE adds to each column. The totals go in 32-bit halves (models/account.py);
        what would carry out of the low half is added to the high one instead, decided
        from the low halves read under the lock. The sum of the two additions is the
        amount whatever the stored low half, so a total is exact even if that read were
        stale; only the halves' normal form depends on it. (Carrying in SQL cost SQLite
        four more expressions per account and row, a tenth of the batched write path.)"""
        return (
            self.delta,
            *_halves(self.received, self.received_low),
            *_halves(self.sent, self.sent_low),
            self.movements,
        )


def _halves(amount: int, low_now: int) -> tuple[int, int]:
    """(to the high half, to the low half) adding up to `amount`, keeping the low half
    from 0 to 2**32 - 1 when it holds `low_now`."""
    carry = (low_now + (amount & _LOW_MASK)) >> LOW_BITS
    return (amount >> LOW_BITS) + carry, (amount & _LOW_MASK) - (carry << LOW_BITS)


class LockedAccount(NamedTuple):
    """What a transfer needs to know of an account it holds locked."""

    id: int
    currency: str
    balance: int
    owner_id: int | None = None  # who may move money out of it (None: not read)
    received_low: int = 0  # the low halves of the kept totals (Movement's carry)
    sent_low: int = 0


class AccountRepository(Repository[Account]):
    """Accounts and their balances."""

    model = Account

    async def for_owner(self, owner_id: int) -> Sequence[Account]:
        """Every account of one user, oldest first."""
        query = select(Account).where(Account.owner_id == owner_id).order_by(Account.id)
        return (await self.session.scalars(query)).all()

    async def lock(self, ids: Collection[int]) -> dict[int, LockedAccount]:
        """Read accounts for a write, in id order.

        PostgreSQL takes row locks (FOR UPDATE) in id order, so two transfers touching
        the same pair lock them in the same order and cannot deadlock. SQLite ignores
        FOR UPDATE; there the caller already holds the database write lock because the
        transaction began IMMEDIATE.
        """
        if not ids:
            return {}
        ordered = sorted(set(ids))
        if _is_postgres(self.session):
            rows = await self.session.execute(_LOCK_PG, {"ids": ordered})
        else:
            rows = await self.session.execute(_LOCK, {"ids": ordered})
        return {
            row.id: LockedAccount(
                row.id, row.currency, row.balance, row.owner_id, row.received_low, row.sent_low
            )
            for row in rows
        }

    async def apply_deltas(self, deltas: Mapping[int, Movement]) -> int:
        """Apply each account's `Movement` in one guarded UPDATE: its balance moves by the
        delta, its kept totals (received, sent, movements) by the movement; return how
        many accounts changed.

        The balance changes relative to its stored value (`balance + delta`), never by
        writing back a value read earlier, and the WHERE clause refuses any change that
        would go below zero. The totals change in the same statement, so they cannot
        drift from the balance. Fewer changed accounts than deltas means a refusal (or an
        unknown account): the caller must fail the whole transaction.
        """
        if not deltas:
            return 0
        now = utcnow()
        if _is_postgres(self.session):
            result = await self.session.execute(APPLY_DELTAS_PG, pg_movements(deltas, now))
        else:
            rows = json.dumps([(i, *m.parameters()) for i, m in deltas.items()])
            result = await self.session.execute(_APPLY_DELTAS_SQLITE, {"deltas": rows, "now": now})
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def apply_decided_deltas(self, deltas: Mapping[int, Movement], now: datetime) -> None:
        """Apply each account's `Movement` (as `apply_deltas`), for a caller that holds the
        accounts locked and decided every delta against their balances, so that a refusal
        is a bug, not an outcome: it fails the transaction.

        On SQLite the UPDATE is sent DEFERRED (db/sqlite_one_hop.py: with the
        transaction's next statement or its COMMIT, not in a crossing of its own), so its
        row count is never read; the balance CHECK constraint (balance >= 0) refuses a
        change below zero by failing the statement, and with it the commit. The accounts
        cannot have gone: the caller read them under the database's write lock. On
        PostgreSQL, `apply_deltas` with its count checked.
        """
        if not deltas:
            return
        if _is_postgres(self.session):
            if await self.apply_deltas(deltas) != len(deltas):
                raise RuntimeError("the guarded balance update refused an account")
            return
        rows = json.dumps([(i, *m.parameters()) for i, m in deltas.items()])
        await self.session.execute(_ADD_DELTAS_SQLITE, {"deltas": rows, "now": now})


PG_MOVEMENT_ARRAYS: Final = (
    "ids",
    "deltas",
    "received_highs",
    "received_lows",
    "sent_highs",
    "sent_lows",
    "counts",
)


def pg_movements(deltas: Mapping[int, Movement], now: datetime) -> dict[str, object]:
    """The parameters of the PostgreSQL balance update (`APPLY_DELTAS_PG`): one array
    per column, and `now`."""
    columns = zip(*((i, *m.parameters()) for i, m in deltas.items()), strict=True)
    params: dict[str, object] = {
        name: list(column) for name, column in zip(PG_MOVEMENT_ARRAYS, columns, strict=True)
    }
    params["now"] = now
    return params


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# The statements are built once, with the values as parameters, so their SQL text is the
# same for any number of accounts: SQLAlchemy compiles each once, and asyncpg prepares each
# once per connection. (An IN list or a CASE with one branch per account would change the
# text with every batch size: a new compilation, and on PostgreSQL a new PREPARE.)
_accounts = cast(Table, Account.__table__)
_LOCKED_COLUMNS = (
    _accounts.c.id,
    _accounts.c.currency,
    _accounts.c.balance,
    _accounts.c.owner_id,
    _accounts.c.received_low,
    _accounts.c.sent_low,
)

_LOCK = (
    select(*_LOCKED_COLUMNS)
    .where(_accounts.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_accounts.c.id)
)
_LOCK_PG = (
    select(*_LOCKED_COLUMNS)
    .where(_accounts.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    .order_by(_accounts.c.id)
    .with_for_update()
)

# SQLite: one UPDATE … FROM json_each(:deltas), the rows sent as one JSON text (each
# `[id, *Movement.parameters()]`), so that SQLAlchemy processes one parameter set whatever
# the count (an executemany of one UPDATE per account processed a set, with its
# timestamp, per account).
_MOVEMENT_COLUMNS: Final = ("id", "delta", "rh", "rl", "sh", "sl", "n")
_pairs = func.json_each(bindparam("deltas", type_=String)).table_valued("value")
_sqlite_deltas = select(
    *(
        func.json_extract(_pairs.c.value, f"$[{i}]").label(name)
        for i, name in enumerate(_MOVEMENT_COLUMNS)
    )
).subquery("d")


def _moved(d: Any) -> dict[str, Any]:
    """The SET clause of the balance update, given the movements `d` (the columns of
    `Movement.parameters`): every column moves relative to its stored value."""
    a = _accounts.c
    return {
        "balance": a.balance + d.c.delta,
        "received_high": a.received_high + d.c.rh,
        "received_low": a.received_low + d.c.rl,
        "sent_high": a.sent_high + d.c.sh,
        "sent_low": a.sent_low + d.c.sl,
        "movements": a.movements + d.c.n,
        "updated_at": bindparam("now", type_=UTCDateTime()),
    }


_APPLY_DELTAS_SQLITE = (
    update(_accounts)
    .where(
        _accounts.c.id == _sqlite_deltas.c.id,
        _accounts.c.balance + _sqlite_deltas.c.delta >= 0,
    )
    .values(_moved(_sqlite_deltas))
)

# apply_decided_deltas on SQLite: the same UPDATE without the guard in its WHERE clause,
# which the CHECK constraint replaces by failing the statement; DEFERRED, as nothing is
# read back.
_ADD_DELTAS_SQLITE = (
    update(_accounts)
    .prefix_with(DEFERRED)
    .where(_accounts.c.id == _sqlite_deltas.c.id)
    .values(_moved(_sqlite_deltas))
)

# PostgreSQL: one UPDATE … FROM unnest(ids, deltas, …), one round trip whatever the count.
_deltas = (
    func.unnest(*(bindparam(name, type_=ARRAY(BigInteger)) for name in PG_MOVEMENT_ARRAYS))
    .table_valued(*_MOVEMENT_COLUMNS)
    .render_derived(name="d")
)
APPLY_DELTAS_PG: Final = (
    update(_accounts)
    .where(_accounts.c.id == _deltas.c.id, _accounts.c.balance + _deltas.c.delta >= 0)
    .values(_moved(_deltas))
)
"""The guarded balance update on PostgreSQL (parameters: `pg_movements`); also a part of
`TransferRepository.insert_and_apply`'s one statement."""
