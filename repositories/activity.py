"""Read-side queries over one user's money: recent transfers and totals per currency."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select, true, union
from sqlalchemy.orm import aliased

from models import Account, Transfer, User
from repositories.base import Repository
from repositories.exact_sums import joined, split_sum
from repositories.transfers import among, history_range, newest_of


def _owned_legs(
    column: str, owner_id: int, limit: int, before_id: int | None, *, postgres: bool
) -> Select[Any]:
    """The newest `limit` transfer ids per account of the owner with the account as
    `column` (source or destination), one index range scan per account."""
    leg = aliased(Transfer)
    account = getattr(leg, column)
    newest = (
        select(leg.id)
        .where(history_range(account, leg.id, Account.id, before_id, postgres=postgres))
        .order_by(account.desc(), leg.id.desc())
        .limit(limit)
    )
    owned = Account.owner_id == owner_id
    if postgres:
        per_account = newest.lateral("newest")
        return select(per_account.c.id).select_from(Account).join(per_account, true()).where(owned)
    # Correlated, so SQLite runs it once per owned account (the account is the subquery's
    # outer row), reading only its rows. `found` is matched on the same index's columns,
    # so each id is looked up in that index (covering), next to its neighbours, not in
    # the table.
    found = aliased(Transfer)
    match = and_(getattr(found, column) == Account.id, found.id.in_(newest))
    return select(found.id).select_from(Account).join(found, match).where(owned)


def _owned_account_ids(owner_id: int) -> Select[int]:
    return select(Account.id).where(Account.owner_id == owner_id)


class ActivityRepository(Repository[Transfer]):
    """What happened in a user's accounts, found by owner rather than by account id, so
    these queries do not wait for the user's accounts to be loaded first."""

    model = Transfer

    async def recent_for_owner(
        self, owner_id: int, *, limit: int, before_id: int | None = None
    ) -> Sequence[Transfer]:
        """Transfers into or out of any of the owner's accounts, newest first,
        keyset-paginated by id (a transfer between two of them once).

        For each of the owner's accounts (the owner index), the newest `limit` ids as
        source and as destination, each one backward range scan of a history index, then
        the page's rows by primary key: a page costs the owner's accounts times its rows,
        never the history. The per-account scans are a LATERAL join on PostgreSQL and a
        correlated IN subquery on SQLite, which has no LATERAL; a plain `IN (owned)`
        condition would read every owned account's whole history and sort it.
        """
        postgres = self.session.get_bind().dialect.name == "postgresql"
        legs = [
            _owned_legs(column, owner_id, limit, before_id, postgres=postgres)
            for column in ("source_account_id", "destination_account_id")
        ]
        ids = union(*legs).subquery()
        query = (
            select(Transfer)
            .where(among(self.session, newest_of(ids, limit)))
            .order_by(Transfer.id.desc())
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def totals_for_owner(self, owner_id: int) -> list[tuple[str, int, int, int, int, int]]:
        """Per currency: (currency, accounts, balance, received, sent, movements).

        A transfer between two of the owner's own accounts counts as sent and as received,
        and as two movements. Read from the totals each account keeps (models/account.py):
        a few rows by the owner index, however long the history.
        """
        a = Account
        query = (
            select(
                a.currency,
                func.count(),
                *split_sum(self.session, a.balance, "balance"),
                # Summed apart, the halves stay exact on SQLite (a low half < 2**32).
                func.sum(a.received_high),
                func.sum(a.received_low),
                func.sum(a.sent_high),
                func.sum(a.sent_low),
                func.sum(a.movements),
            )
            .where(a.owner_id == owner_id)
            .group_by(a.currency)
            .order_by(a.currency)
        )
        rows = await self.session.execute(query)
        return [
            (str(c), int(n), joined(bh, bl), joined(rh, rl), joined(sh, sl), int(m))
            for c, n, bh, bl, rh, rl, sh, sl, m in rows
        ]

    async def owners(
        self, account_ids: Collection[int], *, visible_to: int | None = None
    ) -> dict[int, tuple[int, str, int, str]]:
        """Per account id: (account id, currency, owner id, owner name), in one `IN` query;
        unknown ids are simply absent. What a user may see of the other side of a transfer:
        with `visible_to`, only that user's own accounts and those on the other side of a
        transfer with one of them (the rest are absent, as unknown ids are)."""
        if not account_ids:
            return {}
        query = (
            select(Account.id, Account.currency, User.id, User.name)
            .join(User, User.id == Account.owner_id)
            .where(Account.id.in_(sorted(set(account_ids))))
        )
        if visible_to is not None:
            # An alias: the plain entity would correlate with the outer query's accounts.
            held = aliased(Account)
            theirs = select(held.id).where(held.owner_id == visible_to)
            dealt_with = exists().where(
                or_(
                    and_(
                        Transfer.source_account_id == Account.id,
                        Transfer.destination_account_id.in_(theirs),
                    ),
                    and_(
                        Transfer.destination_account_id == Account.id,
                        Transfer.source_account_id.in_(theirs),
                    ),
                )
            )
            query = query.where(or_(Account.owner_id == visible_to, dealt_with))
        rows = await self.session.execute(query)
        return {row[0]: (row[0], row[1], row[2], row[3]) for row in rows}
