"""Events for other services: the outbox the relay publishes, its lease, and the example
consumer's inbox and statement lines.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 08:00:00.000000+00:00

Only transfers committed from this revision on have an event: transfers already in the
ledger are history, and publishing all of them on upgrade would flood every consumer.
`inbox_messages` and `statement_lines` belong to the consumer (ledgerctl consume), which
may run on a database of its own: no foreign key points into the ledger's tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from the models (see 0001).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
NOW = sa.text("CURRENT_TIMESTAMP")
PENDING = "status = 'pending'"
FAILED = "status = 'failed'"


def upgrade() -> None:
    """Create outbox_events, relay_leases, inbox_messages and statement_lines."""
    op.create_table(
        "outbox_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("created_at", TIMESTAMP, server_default=NOW, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_outbox_events_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    for name, predicate in (("pending", PENDING), ("failed", FAILED)):
        op.create_index(
            f"ix_outbox_events_{name}",
            "outbox_events",
            ["id"],
            postgresql_where=sa.text(predicate),
            sqlite_where=sa.text(predicate),
        )
    op.create_table(
        "relay_leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_relay_leases")),
    )
    op.create_table(
        "inbox_messages",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", TIMESTAMP, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f("pk_inbox_messages")),
    )
    op.create_table(
        "statement_lines",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("recorded_at", TIMESTAMP, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_lines")),
    )
    op.create_index(
        "ix_statement_lines_account", "statement_lines", ["account_id", "id"], unique=False
    )


def downgrade() -> None:
    """Drop the four tables; unsent events go with them."""
    op.drop_index("ix_statement_lines_account", table_name="statement_lines")
    op.drop_table("statement_lines")
    op.drop_table("inbox_messages")
    op.drop_table("relay_leases")
    for name in ("failed", "pending"):
        op.drop_index(f"ix_outbox_events_{name}", table_name="outbox_events")
    op.drop_table("outbox_events")
