"""Idempotency keys get a scope: the same key from two callers is two requests.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:50:00.000000+00:00

Until now a key was global, so one caller's key could return another caller's transfer.
`transfers.idempotency_scope` names whose key it is (services/callers.py: "system",
"feature:<name>" or "user:<id>") and the unique constraint moves from the key alone to
(scope, key). A key always has a scope and no scope exists without a key.

Existing rows: every key stored so far came from in-process code (the CLI, the demo, the
worker, a library caller), which is the trusted system caller, so those rows move into
the "system" scope and every retry that was safe before still finds its transfer.
Rows without a key keep a NULL scope.

Downgrade restores the global key exactly. It refuses, changing nothing, when one key is
now used in two scopes, because one of those transfers would have to lose its key.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported (see 0001): the scope of services.callers.SYSTEM.
SYSTEM_SCOPE = "system"
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
KEY_HAS_SCOPE = "(idempotency_key IS NULL) = (idempotency_scope IS NULL)"


def upgrade() -> None:
    """Add the scope, fill it for existing keys, make (scope, key) the unique pair."""
    # ADD COLUMN needs no rebuild on SQLite either.
    op.add_column("transfers", sa.Column("idempotency_scope", sa.String(length=64), nullable=True))
    _fill_scopes()
    with _notifications_set_aside(), op.batch_alter_table("transfers") as batch:
        batch.drop_constraint(op.f("uq_transfers_idempotency_key"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_transfers_idempotency_scope_idempotency_key"),
            ["idempotency_scope", "idempotency_key"],
        )
        batch.create_check_constraint(op.f("ck_transfers_key_has_scope"), KEY_HAS_SCOPE)


def downgrade() -> None:
    """Back to one global key; refused if a key is used in more than one scope."""
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM (SELECT idempotency_key FROM transfers "
                "WHERE idempotency_key IS NOT NULL "
                "GROUP BY idempotency_key HAVING count(*) > 1) AS shared"
            )
        )
        .scalar_one()
    )
    if shared:
        raise RuntimeError(
            f"cannot downgrade below 0003: {shared} idempotency key(s) are used in more than "
            "one scope, and a global key can name only one transfer"
        )
    with _notifications_set_aside(), op.batch_alter_table("transfers") as batch:
        batch.drop_constraint(op.f("ck_transfers_key_has_scope"), type_="check")
        batch.drop_constraint(
            op.f("uq_transfers_idempotency_scope_idempotency_key"), type_="unique"
        )
        batch.drop_column("idempotency_scope")
        batch.create_unique_constraint(op.f("uq_transfers_idempotency_key"), ["idempotency_key"])


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _fill_scopes() -> None:
    op.execute(
        sa.text(
            "UPDATE transfers SET idempotency_scope = :scope WHERE idempotency_key IS NOT NULL"
        ).bindparams(scope=SYSTEM_SCOPE)
    )


@contextmanager
def _notifications_set_aside() -> Iterator[None]:
    """On SQLite, keep `notifications` out of the way while batch mode rebuilds `transfers`.

    A rebuild is copy, DROP, rename. Our connections enforce foreign keys, and PRAGMA
    foreign_keys cannot be switched off inside the migration's transaction; dropping
    `transfers` while `notifications` rows point at it then fails the commit (deferred
    foreign keys do not help: the rows still point at a dropped table). So the child
    rows wait in a temporary table, the child table is dropped, and after the rebuild it
    is created again exactly as 0002 made it and its rows go back, ids included. On
    PostgreSQL batch mode alters in place and nothing is set aside.
    """
    if not _is_sqlite():
        yield
        return
    columns = "id, user_id, transfer_id, message, created_at"
    op.execute(f"CREATE TEMPORARY TABLE notifications_0003 AS SELECT {columns} FROM notifications")
    op.drop_index(op.f("ix_notifications_user_id"), table_name="notifications")
    op.drop_table("notifications")
    yield
    op.create_table(
        "notifications",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("transfer_id", ID, nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column(
            "created_at", TIMESTAMP, server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["transfers.id"],
            name=op.f("fk_notifications_transfer_id_transfers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("transfer_id", name=op.f("uq_notifications_transfer_id")),
    )
    op.create_index(op.f("ix_notifications_user_id"), "notifications", ["user_id"])
    op.execute(f"INSERT INTO notifications ({columns}) SELECT {columns} FROM notifications_0003")
    op.execute("DROP TABLE notifications_0003")
