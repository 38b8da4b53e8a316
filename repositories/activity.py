"""Read-side queries over one user's money: recent transfers and totals per currency."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import BigInteger, Select, and_, exists, func, or_, select, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import cast, literal

from models import Account, Transfer, User
from repositories.base import Repository
from repositories.exact_sums import joined, split_sum


def _owned_account_ids(owner_id: int) -> Select[int]:
    return select(Account.id).where(Account.owner_id == owner_id)


class ActivityRepository(Repository[Transfer]):
    """What happened in a user's accounts, found by owner rather than by account id, so
    these queries do not wait for the user's accounts to be loaded first."""

    model = Transfer

    async def recent_for_owner(self, owner_id: int, *, limit: int) -> Sequence[Transfer]:
        """Transfers into or out of any of the owner's accounts, newest first."""
        owned = _owned_account_ids(owner_id)
        query = (
            select(Transfer)
            .where(
                or_(
                    Transfer.source_account_id.in_(owned),
                    Transfer.destination_account_id.in_(owned),
                )
            )
            .order_by(Transfer.id.desc())
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def totals_for_owner(self, owner_id: int) -> list[tuple[str, int, int, int, int, int]]:
        """Per currency: (currency, accounts, balance, received, sent, movements).

        A transfer between two of the owner's own accounts counts as sent and as received,
        and as two movements.
        """
        owned = _owned_account_ids(owner_id)
        legs = union_all(
            select(
                Transfer.currency.label("currency"),
                Transfer.amount.label("received"),
                cast(literal(0), BigInteger).label("sent"),
            ).where(Transfer.destination_account_id.in_(owned)),
            select(
                Transfer.currency.label("currency"),
                cast(literal(0), BigInteger).label("received"),
                Transfer.amount.label("sent"),
            ).where(Transfer.source_account_id.in_(owned)),
        ).subquery()
        flows = (
            select(
                legs.c.currency,
                *split_sum(self.session, legs.c.received, "received"),
                *split_sum(self.session, legs.c.sent, "sent"),
                func.count().label("legs"),
            )
            .group_by(legs.c.currency)
            .subquery()
        )
        balances = (
            select(
                Account.currency,
                func.count().label("accounts"),
                *split_sum(self.session, Account.balance, "balance"),
            )
            .where(Account.owner_id == owner_id)
            .group_by(Account.currency)
            .subquery()
        )
        query = (
            select(
                balances.c.currency,
                balances.c.accounts,
                balances.c.balance_high,
                balances.c.balance_low,
                flows.c.received_high,
                flows.c.received_low,
                flows.c.sent_high,
                flows.c.sent_low,
                func.coalesce(flows.c.legs, 0),
            )
            .outerjoin(flows, flows.c.currency == balances.c.currency)
            .order_by(balances.c.currency)
        )
        rows = await self.session.execute(query)
        return [
            (str(c), int(a), joined(bh, bl), joined(rh, rl), joined(sh, sl), int(n))
            for c, a, bh, bl, rh, rl, sh, sl, n in rows
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
