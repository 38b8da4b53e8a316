"""A small generic repository: the queries every aggregate needs, nothing more."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Entity

ModelT = TypeVar("ModelT", bound=Entity)


class Repository(Generic[ModelT]):
    """Query and stage rows of one model inside the caller's transaction.

    A repository adds, flushes and queries. It never begins, commits or rolls back:
    the service that owns the use case owns the transaction, so several repositories'
    work commits or fails together.
    """

    model: type[ModelT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id_: int) -> ModelT | None:
        """The row with this primary key, or None."""
        return await self.session.get(self.model, id_)

    async def get_many(self, ids: Collection[int]) -> dict[int, ModelT]:
        """Rows by primary key in one `IN` query; missing ids are simply absent."""
        if not ids:
            return {}
        rows = await self.session.scalars(select(self.model).where(self.model.id.in_(set(ids))))
        return {row.id: row for row in rows}

    async def add(self, obj: ModelT) -> ModelT:
        """Stage `obj` and flush, so its id and defaults are assigned."""
        self.session.add(obj)
        await self.session.flush()
        return obj

    async def list(self, *, limit: int = 50, after_id: int | None = None) -> Sequence[ModelT]:
        """One page in id order; pass the last id seen as `after_id` for the next page.

        Keyset pagination: unlike OFFSET, the cost of a page does not grow with its
        depth, and rows inserted meanwhile never shift a page.
        """
        query = select(self.model).order_by(self.model.id).limit(limit)
        if after_id is not None:
            query = query.where(self.model.id > after_id)
        return (await self.session.scalars(query)).all()

    async def count(self) -> int:
        """How many rows there are."""
        total = await self.session.scalar(select(func.count()).select_from(self.model))
        return int(total or 0)
