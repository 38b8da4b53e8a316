"""Queries over the transfer history."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    String,
    Table,
    bindparam,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.expression import cast as sql_cast

from db.wakeups import JOBS_CHANNEL, OUTBOX_CHANNEL
from models import Account, Transfer, UTCDateTime
from repositories.accounts import AccountRepository
from repositories.base import Repository
from repositories.exact_sums import joined, split_sum
from repositories.jobs import JobRepository, PerIdJobs
from repositories.outbox_events import OutboxEventRepository


class AccountFlow(NamedTuple):
    """An account's stored balance next to what its history says it should be."""

    account_id: int
    balance: int
    incoming: int
    outgoing: int


class LedgerTotals(NamedTuple):
    """Money that entered and left the ledger, and what the accounts hold."""

    deposits: int
    withdrawals: int
    balances: int


class Written(NamedTuple):
    """What `insert_and_apply` wrote: the new transfer ids in row order."""

    ids: list[int]


class NewTransfer(NamedTuple):
    """The columns of a transfer about to be inserted."""

    source_account_id: int | None
    destination_account_id: int | None
    amount: int
    currency: str
    idempotency_key: str | None
    description: str | None
    idempotency_scope: str | None  # whose key (services/callers.py); None without a key


class TransferRepository(Repository[Transfer]):
    """Transfers: insertion, idempotency lookups, history and audit sums."""

    model = Transfer

    async def insert_unless_key_taken(
        self, rows: Sequence[NewTransfer], created_at: datetime
    ) -> list[int] | None:
        """Insert `rows` and return their ids in row order; None, inserting nothing, if the
        idempotency key of any row is already taken in its scope.

        One INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING id whose rows arrive as one
        parameter whatever their count: a JSON array on SQLite (read by json_each), one
        array per column on PostgreSQL (unnest). Its SQL text never changes, so it is
        compiled once and, on PostgreSQL, prepared once per connection; and SQLAlchemy
        processes one parameter set, not one per row (a multi-row VALUES built by
        "insertmanyvalues" cost Python per row and column and changed its text, so its
        PREPARE, with every batch size). The rows are selected in their order, which
        assigns ascending ids in row order on both engines (rowid under the write lock;
        the sequence, row by row), so sorting the returned ids restores row order.
        On PostgreSQL a key that a concurrent transaction is inserting makes the INSERT wait
        for that transaction: if it commits, the row is skipped, never a unique violation.
        """
        if not rows:
            return []
        if self.session.get_bind().dialect.name == "postgresql":
            columns = list(zip(*rows, strict=True))
            params: dict[str, Any] = dict(zip(_PG_ARRAYS, columns, strict=True))
            statement = _INSERT_PG
        else:
            params = {"rows": json.dumps(rows)}
            statement = _INSERT_SQLITE
        params["created_at"] = created_at
        ids = sorted((await self.session.execute(statement, params)).scalars().all())
        if len(ids) < len(rows):
            await self.session.execute(delete(Transfer).where(Transfer.id.in_(ids)))
            return None
        return ids

    async def insert_and_apply(
        self,
        rows: Sequence[NewTransfer],
        deltas: Mapping[int, int],
        jobs: PerIdJobs,
        now: datetime,
        event_type: str,
    ) -> Written | None:
        """A batch's writes: insert `rows` (created `now`), add `deltas` to the balances
        (`AccountRepository.apply_deltas`), enqueue one of `jobs` per new transfer
        (`JobRepository.add_per_id`) and add one outbox event of `event_type` per new
        transfer (`OutboxEventRepository.add_transfer_events`). None, writing nothing, if
        the idempotency key of any row is taken (`insert_unless_key_taken`).

        The caller decided `deltas` holding the accounts locked, so a delta the guarded
        update refuses is a bug, not an outcome: it fails the transaction on both engines.
        On PostgreSQL the four are one statement (data-modifying CTEs), one round trip
        instead of four; the balance update, the jobs and the events are written only if
        every row was inserted, the count of changed accounts is checked here, and the
        events are numbered only after the balance update has locked its accounts, so that
        two transactions on one account number their events in the order they commit. On
        SQLite, which has no DML in a CTE, four statements, the last three sent with COMMIT
        (`apply_decided_deltas`: the balance CHECK fails the commit); its single writer
        numbers every event in commit order.
        """
        if self.session.get_bind().dialect.name != "postgresql":
            ids = await self.insert_unless_key_taken(rows, now)
            if ids is None:
                return None
            # Both DEFERRED: on the one-hop adapter they cross with COMMIT.
            await AccountRepository(self.session).apply_decided_deltas(deltas, now)
            await JobRepository(self.session).add_per_id(jobs, ids, now=now)
            await OutboxEventRepository(self.session).add_transfer_events(event_type, ids, now=now)
            return Written(ids)
        params: dict[str, Any] = dict(zip(_PG_ARRAYS, zip(*rows, strict=True), strict=True))
        params |= {
            "created_at": now,
            "rows": len(rows),
            "account_ids": list(deltas),
            "deltas": list(deltas.values()),
            "kind": jobs.kind,
            "key": jobs.key,
            "max_attempts": jobs.max_attempts,
            "channel": JOBS_CHANNEL,
            "event_type": event_type,
            "outbox_channel": OUTBOX_CHANNEL,
        }
        inserted, changed, _, _ = (await self.session.execute(_WRITE_PG, params)).one()
        ids = sorted(inserted)
        if len(ids) < len(rows):
            await self.session.execute(delete(Transfer).where(Transfer.id.in_(ids)))
            return None
        if int(changed) != len(deltas):
            raise RuntimeError("the guarded balance update refused an account")
        return Written(ids)

    async def by_idempotency_keys(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], Transfer]:
        """Existing transfers for any of `keys`, (scope, key) pairs, by pair."""
        if not keys:
            return {}
        rows = await self.session.scalars(
            select(Transfer).where(
                tuple_(Transfer.idempotency_scope, Transfer.idempotency_key).in_(set(keys))
            )
        )
        return {
            (row.idempotency_scope, row.idempotency_key): row
            for row in rows
            if row.idempotency_scope is not None and row.idempotency_key is not None
        }

    async def history(
        self, account_id: int, *, limit: int, before_id: int | None = None
    ) -> Sequence[Transfer]:
        """An account's transfers, newest first, keyset-paginated by id."""
        query = (
            select(Transfer)
            .where(
                or_(
                    Transfer.source_account_id == account_id,
                    Transfer.destination_account_id == account_id,
                )
            )
            .order_by(Transfer.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(Transfer.id < before_id)
        return (await self.session.scalars(query)).all()

    async def stream_history(self, account_id: int, *, batch_size: int) -> AsyncGenerator[Transfer]:
        """An account's transfers, oldest first, fetched `batch_size` at a time from a
        server-side cursor: memory stays flat however long the history is."""
        query = (
            select(Transfer)
            .where(
                or_(
                    Transfer.source_account_id == account_id,
                    Transfer.destination_account_id == account_id,
                )
            )
            .order_by(Transfer.id)
            .execution_options(yield_per=batch_size)
        )
        result = await self.session.stream_scalars(query)
        try:
            async for transfer in result:
                yield transfer
        finally:
            await result.close()

    async def flows(self) -> Sequence[AccountFlow]:
        """Every account's balance with the sums of its incoming and outgoing transfers."""
        legs = union_all(
            select(
                Transfer.destination_account_id.label("account_id"),
                Transfer.amount.label("incoming"),
                sql_cast(0, BigInteger).label("outgoing"),
            ).where(Transfer.destination_account_id.is_not(None)),
            select(
                Transfer.source_account_id.label("account_id"),
                sql_cast(0, BigInteger).label("incoming"),
                Transfer.amount.label("outgoing"),
            ).where(Transfer.source_account_id.is_not(None)),
        ).subquery()
        sums = (
            select(
                legs.c.account_id,
                *split_sum(self.session, legs.c.incoming, "incoming"),
                *split_sum(self.session, legs.c.outgoing, "outgoing"),
            )
            .group_by(legs.c.account_id)
            .subquery()
        )
        query = (
            select(
                Account.id,
                Account.balance,
                sums.c.incoming_high,
                sums.c.incoming_low,
                sums.c.outgoing_high,
                sums.c.outgoing_low,
            )
            .outerjoin(sums, sums.c.account_id == Account.id)
            .order_by(Account.id)
        )
        rows = await self.session.execute(query)
        return [
            AccountFlow(int(a), int(b), joined(ih, il), joined(oh, ol))
            for a, b, ih, il, oh, ol in rows
        ]

    async def totals(self) -> LedgerTotals:
        """Deposits, withdrawals and the sum of all balances, read in one statement."""
        deposits = (
            select(*split_sum(self.session, Transfer.amount, "deposits"))
            .where(Transfer.source_account_id.is_(None))
            .subquery()
        )
        withdrawals = (
            select(*split_sum(self.session, Transfer.amount, "withdrawals"))
            .where(Transfer.destination_account_id.is_(None))
            .subquery()
        )
        balances = select(*split_sum(self.session, Account.balance, "balances")).subquery()
        # Each subquery is one aggregate row, so joining them on TRUE gives one row.
        one_row = deposits.join(withdrawals, true()).join(balances, true())
        query = select(deposits, withdrawals, balances).select_from(one_row)
        row = (await self.session.execute(query)).one()
        return LedgerTotals(joined(row[0], row[1]), joined(row[2], row[3]), joined(row[4], row[5]))


# The insert of new transfers, one statement per engine built once (see
# insert_unless_key_taken). The columns in NewTransfer's order, then created_at.
_transfers = cast(Table, Transfer.__table__)
_NEW_COLUMNS: Final = NewTransfer._fields
_KEY_COLUMNS: Final = [_transfers.c.idempotency_scope, _transfers.c.idempotency_key]

_new_rows = func.json_each(bindparam("rows", type_=String)).table_valued("value", "key")
_INSERT_SQLITE = (
    sqlite.insert(_transfers)
    .from_select(
        [*_NEW_COLUMNS, "created_at"],
        select(
            *(
                func.json_extract(_new_rows.c.value, literal_column(f"'$[{i}]'"))
                for i in range(len(_NEW_COLUMNS))
            ),
            bindparam("created_at", type_=UTCDateTime()),
        )
        # WHERE: without it SQLite would read ON CONFLICT as the start of a join clause.
        .where(true())
        .order_by(_new_rows.c.key),
    )
    .on_conflict_do_nothing(index_elements=_KEY_COLUMNS)
    .returning(_transfers.c.id)
)

_PG_ARRAYS: Final = tuple(f"{name}s" for name in _NEW_COLUMNS)
_PG_TYPES: Final = (BigInteger, BigInteger, BigInteger, String, String, String, String)
_new_columns = (
    func.unnest(
        *(
            bindparam(name, type_=ARRAY(type_))
            for name, type_ in zip(_PG_ARRAYS, _PG_TYPES, strict=True)
        )
    )
    .table_valued(*_NEW_COLUMNS, with_ordinality="position")
    .render_derived(name="r")
)
_INSERT_PG = (
    postgresql.insert(_transfers)
    .from_select(
        [*_NEW_COLUMNS, "created_at"],
        select(
            *(_new_columns.c[name] for name in _NEW_COLUMNS),
            bindparam("created_at", type_=UTCDateTime()),
        ).order_by(_new_columns.c.position),
    )
    .on_conflict_do_nothing(index_elements=_KEY_COLUMNS)
    .returning(_transfers.c.id)
)

# insert_and_apply on PostgreSQL: _INSERT_PG's insert, the guarded balance update of
# AccountRepository.apply_deltas, the jobs insert of JobRepository.add_per_id and the
# transfers' outbox events as one statement. Every part sees the same snapshot; "complete"
# holds back the update, the jobs and the events unless every row was inserted (a taken
# key skips a row), so that a refused batch leaves only its inserted rows, which the
# caller deletes. "events" reads the count of "moved", so its ids (nextval) are drawn
# only once the UPDATE holds every account's row lock: a later transaction on the same
# account waits for that lock, hence draws higher ids, and the ids of one account's
# events follow commit order. With the jobs and the events go their NOTIFYs on the jobs
# and outbox channels (db/wakeups.py), which the server delivers at commit.
_WRITE_PG = text(
    """WITH new AS (
    INSERT INTO transfers (source_account_id, destination_account_id, amount, currency,
                           idempotency_key, description, idempotency_scope, created_at)
    SELECT r.source_account_id, r.destination_account_id, r.amount, r.currency,
           r.idempotency_key, r.description, r.idempotency_scope,
           CAST(:created_at AS TIMESTAMP WITH TIME ZONE)
    FROM unnest(CAST(:source_account_ids AS BIGINT[]),
                CAST(:destination_account_ids AS BIGINT[]),
                CAST(:amounts AS BIGINT[]),
                CAST(:currencys AS VARCHAR[]),
                CAST(:idempotency_keys AS VARCHAR[]),
                CAST(:descriptions AS VARCHAR[]),
                CAST(:idempotency_scopes AS VARCHAR[]))
         WITH ORDINALITY AS r(source_account_id, destination_account_id, amount, currency,
                              idempotency_key, description, idempotency_scope, position)
    ORDER BY r.position
    ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
    RETURNING id, source_account_id, destination_account_id, amount, currency
),
complete AS (
    SELECT count(*) = CAST(:rows AS BIGINT) AS ok FROM new
),
moved AS (
    UPDATE accounts
    SET balance = accounts.balance + d.delta,
        updated_at = CAST(:created_at AS TIMESTAMP WITH TIME ZONE)
    FROM unnest(CAST(:account_ids AS BIGINT[]), CAST(:deltas AS BIGINT[])) AS d(id, delta),
         complete
    WHERE complete.ok AND accounts.id = d.id AND accounts.balance + d.delta >= 0
    RETURNING accounts.id
),
queued AS (
    INSERT INTO jobs (kind, payload, status, attempts, max_attempts, run_at, created_at,
                      updated_at)
    SELECT CAST(:kind AS VARCHAR), json_build_object(CAST(:key AS VARCHAR), new.id),
           'queued', 0, CAST(:max_attempts AS INTEGER),
           CAST(:created_at AS TIMESTAMP WITH TIME ZONE),
           CAST(:created_at AS TIMESTAMP WITH TIME ZONE),
           CAST(:created_at AS TIMESTAMP WITH TIME ZONE)
    FROM new, complete
    WHERE complete.ok
    ORDER BY new.id
),
events AS (
    INSERT INTO outbox_events (type, data, status, created_at)
    SELECT CAST(:event_type AS VARCHAR),
           json_build_object('transfer_id', new.id,
                             'source_account_id', new.source_account_id,
                             'destination_account_id', new.destination_account_id,
                             'amount', new.amount, 'currency', new.currency),
           'pending', CAST(:created_at AS TIMESTAMP WITH TIME ZONE)
    FROM new, complete, (SELECT count(*) AS accounts FROM moved) AS locked
    WHERE complete.ok
    ORDER BY new.id
)
SELECT ARRAY(SELECT id FROM new), (SELECT count(*) FROM moved),
       CASE WHEN (SELECT ok FROM complete) THEN pg_notify(CAST(:channel AS TEXT), '') END,
       CASE WHEN (SELECT ok FROM complete)
            THEN pg_notify(CAST(:outbox_channel AS TEXT), '') END
"""
).bindparams(bindparam("created_at", type_=UTCDateTime()))
