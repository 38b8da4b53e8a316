"""`MissingGreenlet`: an attribute that needs IO, touched where async code cannot do IO.

In the sync ORM, touching an expired attribute or an unloaded relationship quietly runs a
query. Under asyncio that query would have to be awaited, and a plain attribute access
cannot await, so SQLAlchemy raises `MissingGreenlet` instead, far from the cause: the
default `expire_on_commit=True` expired everything at commit, or a relationship was never
loaded.

This project's way: sessions keep loaded attributes after commit
(`create_session_factory`: expire_on_commit=False); every relationship is `lazy="raise"`,
so a missing loader option fails at once, in sync and async code alike, naming the
attribute; queries that need a relationship load it eagerly (`selectinload`); and services
return frozen records, never ORM objects, so nothing lazy leaves the session.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InvalidRequestError, MissingGreenlet
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import selectinload

from examples.scratch import fix, funded_accounts, pitfall, scratch_ledger
from models import Account, User
from services import AccountService


def first_line(error: Exception) -> str:
    if isinstance(error, DBAPIError):  # raised inside BEGIN, the driver error wraps it
        error = error.orig if isinstance(error.orig, Exception) else error
    return f"{type(error).__name__}: {str(error).split(' (Background')[0]}"


async def main() -> None:
    async with scratch_ledger() as (engine, sessions):
        first, _ = await funded_accounts(sessions)

        stock = async_sessionmaker(engine)  # SQLAlchemy's default: expire_on_commit=True
        async with stock() as session:
            account = await session.get_one(Account, first)
            account.balance += 0  # any change; the commit expires every loaded attribute
            await session.commit()
            # On SQLAlchemy's stock aiosqlite adapter the failed load also strands the
            # connection it checked out, and the pool logs its failed reset later: quiet here.
            logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
            try:
                print(f"balance: {account.balance}")
            except (MissingGreenlet, DBAPIError) as error:
                pitfall(f"reading account.balance after commit: {first_line(error)}")
        with warnings.catch_warnings():
            # The failed load left behind the driver's coroutine it could not await, in a
            # reference cycle: collect it now, quietly, rather than at interpreter exit.
            warnings.simplefilter("ignore", RuntimeWarning)
            gc.collect()

        async with sessions() as session:
            user = await session.scalar(select(User))
            assert user is not None
            try:
                print(len(user.accounts))
            except InvalidRequestError as error:
                pitfall(f"an unloaded relationship, lazy='raise': {first_line(error)}")

        async with sessions() as session:
            query = select(User).options(selectinload(User.accounts))
            user = await session.scalar(query)
            assert user is not None
            fix(f"loaded eagerly with selectinload: user.accounts holds {len(user.accounts)}")

        record = await AccountService(sessions).get(first)
        kind = type(record).__name__
        fix(f"services return frozen records, nothing lazy: {kind}.balance = {record.balance}")


if __name__ == "__main__":
    asyncio.run(main())
