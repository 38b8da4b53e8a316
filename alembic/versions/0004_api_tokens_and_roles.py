"""Users get a role (user or operator); API tokens, stored as SHA-256 hashes only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:00:00.000000+00:00

Existing users: every one becomes a plain `user` (the column's default). Operators are
made on purpose afterwards (`ledgerctl operator add`), never by a migration guessing.
`users` is altered in place on both engines (SQLite's ADD/DROP COLUMN, no rebuild: the
tables that point at users keep their rows and foreign keys untouched). Downgrade drops
the tokens, which means every API client has to get a new token after upgrading again,
and the role column; an operator becomes an ordinary row of users, as before 0004.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from the models (see 0001).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
ROLE_KNOWN = "role IN ('user', 'operator')"


def upgrade() -> None:
    """Add users.role (every existing user a 'user') and the api_tokens table."""
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its CHECK in one statement and no table rebuild; the
        # constraint is a column constraint there, which DROP COLUMN can remove again.
        op.execute(
            "ALTER TABLE users ADD COLUMN role VARCHAR(16) DEFAULT 'user' NOT NULL "
            f"CONSTRAINT ck_users_role_known CHECK ({ROLE_KNOWN})"
        )
    else:
        op.add_column(
            "users", sa.Column("role", sa.String(length=16), server_default="user", nullable=False)
        )
        op.create_check_constraint(op.f("ck_users_role_known"), "users", ROLE_KNOWN)
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", TIMESTAMP, server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_tokens_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])


def downgrade() -> None:
    """Drop the tokens and the role column."""
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE users DROP COLUMN role")
    else:
        op.drop_constraint(op.f("ck_users_role_known"), "users", type_="check")
        op.drop_column("users", "role")
