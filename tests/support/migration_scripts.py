"""Throw-away copies of the migration scripts, to test revisions the project does not ship.

A copy lives in `<folder>/alembic` next to a copy of pyproject.toml, so ruff judges files
written there with the project's settings.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy import ForeignKey, MetaData, String
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db import migrations
from db.autogenerate import next_revision_id
from models import Base, TimestampMixin
from models.base import NAMING_CONVENTION, BigId
from tests.support.paths import PROJECT_ROOT


def copy_scripts(folder: Path) -> Path:
    """Copy env.py, the template and versions/ into `folder/alembic`; return that path."""
    assert migrations.SCRIPT_LOCATION is not None
    scripts = folder / "alembic"
    shutil.copytree(
        migrations.SCRIPT_LOCATION, scripts, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", folder / "pyproject.toml")
    return scripts


def revision_ids(scripts: Path) -> list[str]:
    """The ids of the revision files in `scripts/versions` (their file-name prefix)."""
    return [path.name.split("_", 1)[0] for path in (scripts / "versions").glob("*.py")]


def add_data_revision(scripts: Path) -> str:
    """Add a revision after the current head that changes no schema (a data migration,
    as a later release might ship); return its id."""
    head = migrations.head_revision()
    revision = next_revision_id(revision_ids(scripts))
    (scripts / "versions" / f"{revision}_later_data_fix.py").write_text(
        f'''"""A later revision: touches rows, not the schema."""

from alembic import op

revision = "{revision}"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE users SET name = name WHERE id < 0")


def downgrade() -> None:
    op.execute("UPDATE users SET name = name WHERE id < 0")
'''
    )
    return revision


PROBE_TABLE = "autogenerate_probes"
"""A table no one would add for real, so the probe never collides with a user's model."""


def metadata_with_probe() -> MetaData:
    """The project's tables plus a probe model built from the project's types (UTCDateTime,
    BigId, TimestampMixin), as a user adding a model would write it."""
    extended = MetaData(naming_convention=NAMING_CONVENTION)
    for table in Base.metadata.tables.values():
        table.to_metadata(extended)

    class ExtendedBase(DeclarativeBase):
        metadata = extended

    class AutogenerateProbe(TimestampMixin, ExtendedBase):
        __tablename__ = PROBE_TABLE

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        name: Mapped[str] = mapped_column(String(200), unique=True)
        owner_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)

    return extended


async def autogenerate(
    engine: AsyncEngine, scripts: Path, metadata: MetaData, message: str
) -> Path:
    """Run `alembic revision --autogenerate -m message` against `engine` comparing to
    `metadata`, with the project's alembic.ini (its hooks included); return the new file."""
    before = set((scripts / "versions").glob("*.py"))

    def run(sync: Connection) -> None:
        config = migrations.alembic_config(sync)
        config.set_main_option("script_location", str(scripts))
        config.attributes["target_metadata"] = metadata
        command.revision(config, message=message, autogenerate=True)

    async with engine.connect() as connection:
        await connection.run_sync(run)
    (written,) = set((scripts / "versions").glob("*.py")) - before
    return written


def ruff(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the project's ruff in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


async def check(engine: AsyncEngine, scripts: Path, metadata: MetaData) -> None:
    """`alembic check` of `metadata` against the database, with the scripts in `scripts`."""

    def run(sync: Connection) -> None:
        config = migrations.alembic_config(sync)
        config.set_main_option("script_location", str(scripts))
        config.attributes["target_metadata"] = metadata
        command.check(config)

    async with engine.connect() as connection:
        await connection.run_sync(run)
