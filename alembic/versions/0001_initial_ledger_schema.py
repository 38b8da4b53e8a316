"""Initial ledger schema: users, accounts and the transfer history.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 02:59:18.852410+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations are frozen in time: they spell out column types instead of importing the
# application's models, which will have changed by the time an old revision runs.
# BIGINT ids on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" aliases the rowid.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the three tables with named constraints and history indexes."""
    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", ID, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_accounts_balance_non_negative")),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_accounts_currency_code")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_accounts_owner_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index(op.f("ix_accounts_owner_id"), "accounts", ["owner_id"])

    op.create_table(
        "transfers",
        sa.Column("id", ID, nullable=False),
        sa.Column("source_account_id", ID, nullable=True),
        sa.Column(
            "destination_account_id",
            ID,
            nullable=True,
        ),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transfers_amount_positive")),
        sa.CheckConstraint(
            "source_account_id IS NOT NULL OR destination_account_id IS NOT NULL",
            name=op.f("ck_transfers_has_an_account"),
        ),
        sa.CheckConstraint(
            "source_account_id IS NULL OR destination_account_id IS NULL "
            "OR source_account_id <> destination_account_id",
            name=op.f("ck_transfers_distinct_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["destination_account_id"],
            ["accounts.id"],
            name=op.f("fk_transfers_destination_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["source_account_id"],
            ["accounts.id"],
            name=op.f("fk_transfers_source_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_transfers_idempotency_key")),
    )
    # Keyset pagination of one account's history walks (account, id).
    op.create_index("ix_transfers_source_history", "transfers", ["source_account_id", "id"])
    op.create_index(
        "ix_transfers_destination_history", "transfers", ["destination_account_id", "id"]
    )


def downgrade() -> None:
    """Drop everything, children first."""
    op.drop_index("ix_transfers_destination_history", table_name="transfers")
    op.drop_index("ix_transfers_source_history", table_name="transfers")
    op.drop_table("transfers")
    op.drop_index(op.f("ix_accounts_owner_id"), table_name="accounts")

    op.drop_table("accounts")
    op.drop_table("users")
