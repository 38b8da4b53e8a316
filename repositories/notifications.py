"""Queries over notifications, and the transfer facts a notification is written from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from models import Account, Notification, Transfer, utcnow
from repositories.base import Repository


class Receipt(NamedTuple):
    """A transfer seen from its receiving side; `recipient_id` is None for a withdrawal."""

    transfer_id: int
    source_account_id: int | None
    destination_account_id: int | None
    amount: int
    currency: str
    recipient_id: int | None


class NotificationRepository(Repository[Notification]):
    """Notifications, written at most once per transfer."""

    model = Notification

    async def receipt(self, transfer_id: int) -> Receipt | None:
        """The transfer with the owner of its destination account, in one query."""
        query = (
            select(
                Transfer.id,
                Transfer.source_account_id,
                Transfer.destination_account_id,
                Transfer.amount,
                Transfer.currency,
                Account.owner_id,
            )
            .outerjoin(Account, Account.id == Transfer.destination_account_id)
            .where(Transfer.id == transfer_id)
        )
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else Receipt(*row)

    async def add_once(self, *, user_id: int, transfer_id: int, message: str) -> bool:
        """Insert the notification unless one exists for `transfer_id`; True if inserted.

        INSERT … ON CONFLICT DO NOTHING rather than look-then-insert: two runs of the
        same job on PostgreSQL could both look, find nothing and both insert, and the
        loser would fail its whole transaction on the unique index.
        """
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(Notification)
            .values(user_id=user_id, transfer_id=transfer_id, message=message, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=[Notification.transfer_id])
            .returning(Notification.id)
        )
        return (await self.session.scalar(statement)) is not None

    async def recent_for_user(self, user_id: int, *, limit: int) -> Sequence[Notification]:
        """A user's newest notifications first."""
        query = (
            select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(Notification.id.desc())
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()
