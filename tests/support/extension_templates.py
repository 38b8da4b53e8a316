"""The files a user writes to add merchants, as docs/extending.md describes them.

The scripted extension (tests/support/scripted_extension.py) writes these into a copy of
the project and appends RESULT to services/results.py; the migration is not here, because
Alembic autogenerates it.
"""

from __future__ import annotations

MODEL = '''\
"""A business that takes payments, owned by a user."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, Entity, TimestampMixin

MERCHANT_NAME_MAX_LENGTH = 200


class Merchant(TimestampMixin, Entity):
    """A merchant; its `name` is unique."""

    __tablename__ = "merchants"

    name: Mapped[str] = mapped_column(String(MERCHANT_NAME_MAX_LENGTH), unique=True)
    owner_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )

    def __repr__(self) -> str:
        return f"Merchant(id={self.id!r}, name={self.name!r})"
'''

REPOSITORY = '''\
"""Queries over merchants."""

from __future__ import annotations

from sqlalchemy import select

from models import Merchant
from repositories.base import Repository


class MerchantRepository(Repository[Merchant]):
    """Merchants by id and by name."""

    model = Merchant

    async def get_by_name(self, name: str) -> Merchant | None:
        """The merchant with exactly this name, or None."""
        return await self.session.scalar(select(Merchant).where(Merchant.name == name))
'''

SERVICE = '''\
"""Use cases for merchants."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import Merchant
from repositories import MerchantRepository, UserRepository
from services import validation
from services.errors import LedgerError, NotFound, UserNotFound
from services.results import MerchantRecord
from services.transactions import Sessions, run_in_transaction


class MerchantNotFound(NotFound):
    """No merchant has this id."""

    def __init__(self, merchant_id: int) -> None:
        super().__init__(f"merchant {merchant_id} does not exist")


class DuplicateMerchant(LedgerError):
    """Another merchant already has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a merchant named {name!r} already exists")


class MerchantService:
    """Register and look up merchants."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def register(self, owner_id: int, name: str) -> MerchantRecord:
        """Create a merchant owned by an existing user; a taken name is DuplicateMerchant."""
        validation.identifier(owner_id, "user id")
        display_name = validation.name(name)

        async def work(session: AsyncSession) -> MerchantRecord:
            if await UserRepository(session).get(owner_id) is None:
                raise UserNotFound(owner_id)
            merchant = Merchant(owner_id=owner_id, name=display_name)
            return MerchantRecord.of(await MerchantRepository(session).add(merchant))

        try:
            return await run_in_transaction(self._sessions, work)
        except IntegrityError as exc:
            # The unique index decides, so two concurrent registrations cannot both win.
            raise DuplicateMerchant(display_name) from exc

    async def get(self, merchant_id: int) -> MerchantRecord:
        """The merchant with this id, or MerchantNotFound."""
        validation.identifier(merchant_id, "merchant id")

        async def work(session: AsyncSession) -> MerchantRecord:
            merchant = await MerchantRepository(session).get(merchant_id)
            if merchant is None:
                raise MerchantNotFound(merchant_id)
            return MerchantRecord.of(merchant)

        return await run_in_transaction(self._sessions, work, read_only=True)
'''

# Appended to services/results.py, where every result lives (tests/services/test_results.py).
RESULT = '''

@dataclass(frozen=True, slots=True)
class MerchantRecord(Result):
    """A registered merchant."""

    id: int
    name: str
    owner_id: int
    created_at: datetime
'''

TEST = '''\
"""MerchantService: registration with unique names, on both engines."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from repositories import MerchantRepository
from services import MerchantService, UserService
from services.errors import UserNotFound
from services.merchants import DuplicateMerchant, MerchantNotFound


async def _merchant_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return await MerchantRepository(session).count()


async def test_a_registered_merchant_can_be_read_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = await UserService(sessions).register("shop@example.com", "Shop Owner")
    merchant = await MerchantService(sessions).register(owner.id, "Corner Shop")
    assert (merchant.name, merchant.owner_id) == ("Corner Shop", owner.id)
    assert await MerchantService(sessions).get(merchant.id) == merchant


async def test_an_unknown_owner_is_refused_and_nothing_is_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(UserNotFound):
        await MerchantService(sessions).register(404, "Nobody's Shop")
    assert await _merchant_count(sessions) == 0


async def test_an_unknown_merchant_is_not_found(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(MerchantNotFound):
        await MerchantService(sessions).get(404)


async def test_concurrent_registrations_of_one_name_create_exactly_one_merchant(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = await UserService(sessions).register("race@example.com", "Racer")
    merchants = MerchantService(sessions)
    results = await asyncio.gather(
        *(merchants.register(owner.id, "Busy Shop") for _ in range(5)),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 4
    assert all(isinstance(f, DuplicateMerchant) for f in failures)
    assert await _merchant_count(sessions) == 1
'''
