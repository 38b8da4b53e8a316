"""Accounts keep their history's totals: received, sent (each as 32-bit halves) and the
count of movements, moved by the same UPDATE as the balance.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 11:00:00.000000+00:00

Upgrade adds the columns (0 for a new account) and backfills every existing account from
its history in one UPDATE … FROM an aggregate over `transfers` (one pass over the table,
by the same rule as the auditor's sums), so the kept totals of an existing ledger agree
with its history from the first request on; the auditor checks that they stay so.
A total may pass 64 bits (a balance alone may reach 2**63 - 1), hence `high * 2**32 + low`
with 0 <= low < 2**32 (models/account.py). `accounts` is altered in place on both engines
(SQLite's ADD/DROP COLUMN, no rebuild).

Downgrade drops the five columns and loses nothing: they are derived from `transfers`,
which stays, and upgrading again recomputes them. Code from before 0006 never reads or
writes them, so it runs on either side.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("received_high", "received_low", "sent_high", "sent_low", "movements")

# Each account's legs (a transfer is a leg of its destination and one of its source),
# summed per account in halves: a half-sum stays exact below 2**31 legs (see
# repositories/exact_sums.py), and the low half's carry goes into the high half.
# CAST: PostgreSQL's SUM of BIGINT is NUMERIC, which has no shift operators.
BACKFILL = """
UPDATE accounts
SET received_high = s.rh + (s.rl >> 32), received_low = s.rl & 4294967295,
    sent_high = s.sh + (s.sl >> 32), sent_low = s.sl & 4294967295,
    movements = s.n
FROM (
    SELECT account_id,
           CAST(SUM(CASE WHEN incoming THEN amount >> 32 ELSE 0 END) AS BIGINT) AS rh,
           CAST(SUM(CASE WHEN incoming THEN amount & 4294967295 ELSE 0 END) AS BIGINT) AS rl,
           CAST(SUM(CASE WHEN incoming THEN 0 ELSE amount >> 32 END) AS BIGINT) AS sh,
           CAST(SUM(CASE WHEN incoming THEN 0 ELSE amount & 4294967295 END) AS BIGINT) AS sl,
           COUNT(*) AS n
    FROM (
        SELECT destination_account_id AS account_id, amount, 1 = 1 AS incoming
        FROM transfers WHERE destination_account_id IS NOT NULL
        UNION ALL
        SELECT source_account_id, amount, 1 = 0 FROM transfers
        WHERE source_account_id IS NOT NULL
    ) AS legs
    GROUP BY account_id
) AS s
WHERE accounts.id = s.account_id
"""


def upgrade() -> None:
    """Add the kept totals and compute them from each account's history."""
    for name in COLUMNS:
        op.add_column(
            "accounts", sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute(BACKFILL)


def downgrade() -> None:
    """Drop the kept totals (derived data: the history they summed stays)."""
    for name in reversed(COLUMNS):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE accounts DROP COLUMN {name}")
        else:
            op.drop_column("accounts", name)
