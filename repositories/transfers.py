"""Queries over the transfer history."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    Subquery,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, QueryableAttribute

from db.wakeups import JOBS_CHANNEL, OUTBOX_CHANNEL
from models import Account, OutboxEvent, OutboxStatus, Transfer, UTCDateTime
from repositories.accounts import APPLY_DELTAS_PG, AccountRepository, Movement, pg_movements
from repositories.base import Repository
from repositories.exact_sums import joined, split_sum
from repositories.jobs import JobRepository, PerIdJobs, per_id_jobs_insert
from repositories.outbox_events import OutboxEventRepository


class LegSum(NamedTuple):
    """The transfers of one account in one direction over a range of ids: `incoming`
    (the account is the destination) or not, `external` (a deposit or withdrawal: no
    account on the other end) or not; their amounts' sum and how many."""

    account_id: int
    incoming: bool
    external: bool
    amount: int
    legs: int


class KeptTotals(NamedTuple):
    """An account's balance and the totals it keeps (models/account.py)."""

    account_id: int
    balance: int
    received: int
    sent: int
    movements: int


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


_Column = ColumnElement[Any] | QueryableAttribute[Any]
_NO_ID: Final = 2**63 - 1  # above every id: "before" of a first page


def history_range(
    account: _Column,
    transfer_id: _Column,
    account_id: _Column | int,
    before_id: int | None,
    *,
    postgres: bool,
) -> ColumnElement[bool]:
    """The entries of a history index (`account`, `transfer_id`) of one account below
    `before_id`, to be read newest first in the index's order, (account, id): one
    backward range scan of the index, bounded at both ends, on each engine.

    PostgreSQL: as a range of the index, `account >= :a AND (account, id) < (:a, :b)`.
    With `account = :a` its planner drops the account from the order (it is constant)
    and may walk the primary key backwards instead, filtering for the account, which for
    an account quiet lately reads the whole table; no other index gives (account, id)
    order over a range. SQLite: `account = :a AND id < :b`, its best-planned form; it
    would bound the row-value range by the account alone and filter every id above :b."""
    top = _NO_ID if before_id is None else before_id
    if postgres:
        return and_(account >= account_id, tuple_(account, transfer_id) < tuple_(account_id, top))
    return and_(account == account_id, transfer_id < top)


def newest_ids(
    column: InstrumentedAttribute[int | None],
    account_id: int,
    limit: int,
    before_id: int | None,
    *,
    postgres: bool,
) -> Subquery:
    """The ids of the newest `limit` transfers with `account_id` in `column` (a history
    index's leading column), below `before_id` if given: one backward range scan of that
    index (`history_range`)."""
    return (
        select(Transfer.id)
        .where(history_range(column, Transfer.id, account_id, before_id, postgres=postgres))
        .order_by(column.desc(), Transfer.id.desc())
        .limit(limit)
        .subquery()
    )


def newest_of(ids: Subquery, limit: int) -> Select[Any]:
    """The newest `limit` of `ids` (the candidates of a page): chosen among the ids alone,
    so that only the page's rows are read from the table."""
    return select(ids.c.id).order_by(ids.c.id.desc()).limit(limit)


def among(session: AsyncSession, ids: Select[Any]) -> ColumnElement[bool]:
    """`transfers.id` is one of the few `ids` (a page's): a primary-key lookup each on
    both engines. On PostgreSQL `id = ANY(ARRAY(ids))`, whose array is computed once
    before the scan; a join or `IN` leaves the planner free to walk the primary key from
    the newest id down to the page instead (a merge or semi join), as costly as the
    page is deep."""
    if session.get_bind().dialect.name == "postgresql":
        return Transfer.id == any_(func.array(ids.scalar_subquery()))
    return Transfer.id.in_(ids)


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
        params["now"] = created_at
        ids = sorted((await self.session.execute(statement, params)).scalars().all())
        if len(ids) < len(rows):
            await self.session.execute(delete(Transfer).where(Transfer.id.in_(ids)))
            return None
        return ids

    async def insert_and_apply(
        self,
        rows: Sequence[NewTransfer],
        deltas: Mapping[int, Movement],
        jobs: PerIdJobs,
        now: datetime,
        event_type: str,
    ) -> Written | None:
        """A batch's writes: insert `rows` (created `now`), apply `deltas` to the balances
        and kept totals (`AccountRepository.apply_deltas`), enqueue one of `jobs` per new transfer
        (`JobRepository.add_per_id`) and add one outbox event of `event_type` per new
        transfer (`OutboxEventRepository.add_transfer_events`). None, writing nothing, if
        the idempotency key of any row is taken (`insert_unless_key_taken`).

        The caller decided `deltas` holding the accounts locked, so a delta the guarded
        update refuses is a bug, not an outcome: it fails the transaction on both engines.
        On PostgreSQL the four are one statement (data-modifying CTEs built from the same
        Core statements: `_INSERT_PG`, `APPLY_DELTAS_PG`, `per_id_jobs_insert`), one round
        trip instead of four; the balance update, the jobs and the events are written only if
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
        params |= pg_movements(deltas, now)
        params |= {
            "now": now,
            "rows": len(rows),
            "kind": jobs.kind,
            "key": jobs.key,
            "max_attempts": jobs.max_attempts,
            "channel": JOBS_CHANNEL,
            "event_type": event_type,
            "outbox_channel": OUTBOX_CHANNEL,
        }
        inserted, changed, _, _ = (await self.session.execute(_WRITE_PG, params)).one()
        ids = sorted(inserted or ())
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
        """An account's transfers, newest first, keyset-paginated by id.

        Read as the union of two index range scans, the newest `limit` ids of the account
        as source (ix_transfers_source_history) and as destination
        (ix_transfers_destination_history), then the page's rows by primary key: a page
        costs its rows on both engines, however long the history. (`source = :a OR
        destination = :a` would read the account's whole history and sort it, or scan the
        table backwards until `limit` rows matched.)
        """
        postgres = self.session.get_bind().dialect.name == "postgresql"
        legs = union_all(
            *(
                select(newest_ids(column, account_id, limit, before_id, postgres=postgres).c.id)
                for column in (Transfer.source_account_id, Transfer.destination_account_id)
            )
        ).subquery()
        query = (
            select(Transfer)
            .where(among(self.session, newest_of(legs, limit)))
            .order_by(Transfer.id.desc())
            .limit(limit)
        )
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

    async def last_id(self) -> int:
        """The highest transfer id (0 for an empty ledger): one step down the primary key."""
        return int(await self.session.scalar(select(func.max(Transfer.id))) or 0)

    async def leg_sums(self, after_id: int, up_to_id: int) -> list[LegSum]:
        """The transfers with `after_id < id <= up_to_id` summed per account and leg (a
        transfer is a leg of its destination and one of its source): one range scan of
        the primary key, aggregated by the database, so an audit reads the history range
        by range, each as costly as its rows. Exact on both engines (`split_sum`)."""
        in_range = (Transfer.id > after_id, Transfer.id <= up_to_id)
        legs = union_all(
            select(
                Transfer.destination_account_id.label("account_id"),
                true().label("incoming"),
                Transfer.source_account_id.is_(None).label("external"),
                Transfer.amount.label("amount"),
            ).where(Transfer.destination_account_id.is_not(None), *in_range),
            select(
                Transfer.source_account_id,
                false(),
                Transfer.destination_account_id.is_(None),
                Transfer.amount,
            ).where(Transfer.source_account_id.is_not(None), *in_range),
        ).subquery()
        query = select(
            legs.c.account_id,
            legs.c.incoming,
            legs.c.external,
            *split_sum(self.session, legs.c.amount, "amount"),
            func.count(),
        ).group_by(legs.c.account_id, legs.c.incoming, legs.c.external)
        rows = await self.session.execute(query)
        return [
            LegSum(int(row[0]), bool(row[1]), bool(row[2]), joined(row[3], row[4]), int(row[5]))
            for row in rows
        ]

    async def stream_kept_totals(self, *, batch_size: int) -> AsyncGenerator[KeptTotals]:
        """Every account's balance and kept totals in id order, `batch_size` rows at a
        time from a server-side cursor."""
        a = Account
        query = (
            select(
                a.id,
                a.balance,
                a.received_high,
                a.received_low,
                a.sent_high,
                a.sent_low,
                a.movements,
            )
            .order_by(a.id)
            .execution_options(yield_per=batch_size)
        )
        result = await self.session.stream(query)
        try:
            async for row in result:
                received, sent = joined(row[2], row[3]), joined(row[4], row[5])
                yield KeptTotals(row[0], row[1], received, sent, row[6])
        finally:
            await result.close()


# The insert of new transfers, one statement per engine built once (see
# insert_unless_key_taken). The columns in NewTransfer's order, then created_at.
_transfers = cast(Table, Transfer.__table__)
_accounts = cast(Table, Account.__table__)
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
            bindparam("now", type_=UTCDateTime()),
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
            bindparam("now", type_=UTCDateTime()),
        ).order_by(_new_columns.c.position),
    )
    .on_conflict_do_nothing(index_elements=_KEY_COLUMNS)
    # The id first (insert_unless_key_taken reads only it), then what the events carry.
    .returning(
        _transfers.c.id,
        _transfers.c.source_account_id,
        _transfers.c.destination_account_id,
        _transfers.c.amount,
        _transfers.c.currency,
    )
)

# insert_and_apply on PostgreSQL: _INSERT_PG's insert, the guarded balance update of
# AccountRepository.apply_deltas, the jobs insert of JobRepository.add_per_id and the
# transfers' outbox events as one statement, the first three the very statements those
# methods run, here as data-modifying CTEs. Every part sees the same snapshot; "complete"
# holds back the update, the jobs and the events unless every row was inserted (a taken
# key skips a row), so that a refused batch leaves only its inserted rows, which the
# caller deletes. "events" reads the count of "moved", so its ids (nextval) are drawn
# only once the UPDATE holds every account's row lock: a later transaction on the same
# account waits for that lock, hence draws higher ids, and the ids of one account's
# events follow commit order. With the jobs and the events go their NOTIFYs on the jobs
# and outbox channels (db/wakeups.py), which the server delivers at commit. No parameter
# is named after a column: SQLAlchemy would add it to the UPDATE's SET clause.
_new = _INSERT_PG.cte("new")
_complete = (
    select((func.count() == bindparam("rows", type_=BigInteger)).label("ok"))
    .select_from(_new)
    .cte("complete")
)
_all_inserted = select(_complete.c.ok).scalar_subquery()
_moved = APPLY_DELTAS_PG.where(_all_inserted).returning(_accounts.c.id).cte("moved")
_new_if_complete = _new.join(_complete, _complete.c.ok)
_queued = per_id_jobs_insert(
    func.json_build_object(bindparam("key", type_=String), _new.c.id),
    _new_if_complete,
    _new.c.id,
).cte("queued")
_locked = select(func.count().label("accounts")).select_from(_moved).subquery("locked")
_events_table = cast(Table, OutboxEvent.__table__)
_events = (
    postgresql.insert(_events_table)
    .from_select(
        ["type", "data", "status", "created_at"],
        select(
            bindparam("event_type", type_=String),
            func.json_build_object(
                *(
                    part
                    for name in (
                        "id",
                        "source_account_id",
                        "destination_account_id",
                        "amount",
                        "currency",
                    )
                    for part in (
                        literal("transfer_id" if name == "id" else name, type_=String),
                        _new.c[name],
                    )
                )
            ),
            literal(OutboxStatus.PENDING.value, type_=String),
            bindparam("now", type_=UTCDateTime()),
        )
        .select_from(_new_if_complete.join(_locked, true()))
        .order_by(_new.c.id),
    )
    .cte("events")
)


def _notify_if_complete(channel: str) -> Any:
    return case(
        (
            _all_inserted,
            func.pg_notify(bindparam(channel, type_=String), literal("", type_=String)),
        )
    )


_WRITE_PG = select(
    select(func.array_agg(_new.c.id)).scalar_subquery(),
    select(func.count()).select_from(_moved).scalar_subquery(),
    _notify_if_complete("channel"),
    _notify_if_complete("outbox_channel"),
).add_cte(_queued, _events)
