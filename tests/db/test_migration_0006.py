"""Revision 0006 (kept account totals): an existing ledger's accounts get the totals of
their history, past 64 bits; the audit agrees; down and up again loses nothing."""

from __future__ import annotations

from sqlalchemy import inspect, text

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from services import LedgerAuditor
from services.validation import MAX_AMOUNT
from tests.support.backends import NewDatabase

LOW = 2**32
KEPT = "received_high, received_low, sent_high, sent_low, movements"


def halves(total: int) -> tuple[int, int]:
    return total // LOW, total % LOW


async def test_existing_accounts_get_their_historys_totals_and_lose_nothing_going_down(
    new_database: NewDatabase,
) -> None:
    engine = create_engine(DatabaseSettings(url=await new_database()))
    try:
        await migrations.upgrade(engine, "0005")
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO users (id, email, name) VALUES (1, 'a@example.com', 'A')")
            )
            await connection.execute(
                text(
                    "INSERT INTO accounts (id, owner_id, currency, balance) VALUES "
                    "(1, 1, 'EUR', :a), (2, 1, 'EUR', 5), (3, 1, 'EUR', 0)"
                ),
                {"a": MAX_AMOUNT - 5},
            )
            await connection.execute(
                text(
                    "INSERT INTO transfers (source_account_id, destination_account_id, amount, "
                    "currency) VALUES (NULL, 1, :max, 'EUR'), (1, NULL, :max, 'EUR'), "
                    "(NULL, 1, :max, 'EUR'), (1, 2, 5, 'EUR')"
                ),
                {"max": MAX_AMOUNT},
            )
        await migrations.upgrade(engine, "0006")
        async with engine.connect() as connection:
            kept = list(await connection.execute(text(f"SELECT {KEPT} FROM accounts ORDER BY id")))
        assert kept == [
            (*halves(2 * MAX_AMOUNT), *halves(MAX_AMOUNT + 5), 4),
            (*halves(5), 0, 0, 1),
            (0, 0, 0, 0, 0),
        ]
        report = await LedgerAuditor(create_session_factory(engine)).verify()
        assert report.ok, report.problems

        await migrations.downgrade(engine, "0005")
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("accounts")}
            )
            balances = list(await connection.execute(text("SELECT balance FROM accounts")))
            transfers = await connection.scalar(text("SELECT count(*) FROM transfers"))
        assert columns.isdisjoint(KEPT.split(", "))
        assert sorted(b for (b,) in balances) == [0, 5, MAX_AMOUNT - 5]
        assert transfers == 4
        await migrations.upgrade(engine)
        await migrations.check(engine)
        assert (await LedgerAuditor(create_session_factory(engine)).verify()).ok
    finally:
        await engine.dispose()
