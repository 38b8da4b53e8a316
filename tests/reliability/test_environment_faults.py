"""Faults of the environment: each is one clear line and exit 1, with no traceback, no
partial write and no password printed.

Most cases run ledgerctl in this process (tests/cli_runs.py); those about file permissions
and an unreachable server run it as a real subprocess.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, create_session_factory, migrations, pool_status
from services import AccountService, LedgerAuditor, UserService
from services.errors import PoolExhausted
from tests.support.backends import NewDatabase, postgres_only
from tests.support.cli_runs import CliRun, ledgerctl, ledgerctl_process
from tests.support.databases import POSTGRES_URL
from tests.support.ledger import Snapshot, snapshot

PASSWORD = "hunter2"
UNKNOWN_REVISION = "ffffffffffff"


def assert_fails_cleanly(run: CliRun) -> str:
    """One line, exit 1, and the password nowhere in the output."""
    line = run.one_line_error()
    assert PASSWORD not in run.stdout + run.stderr
    return line


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def seed(url: str) -> Snapshot:
    """Migrate `url`, add a user with a funded account (id 1), and snapshot it."""
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        user = await UserService(sessions).register("ada@example.com", "Ada")
        account = await AccountService(sessions).open(user.id, "EUR")
        await AccountService(sessions).deposit(account.id, 1_000)
        return await snapshot(sessions)
    finally:
        await engine.dispose()


async def read_back(url: str) -> Snapshot:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        return await snapshot(create_session_factory(engine))
    finally:
        await engine.dispose()


# --- DATABASE_URL and settings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a database URL"),
        # A forgotten "@host": the password is read as the port.
        (f"postgresql+asyncpg://ledger:{PASSWORD}/ledger", "port"),
        (f"postgresql+asyncpg://ledger:{PASSWORD}@db:99999/ledger", "port"),
        (f"postgresql+asyncpg://ledger:{PASSWORD}@db/ledger?sslmode=require", "sslmode"),
        (f"mysql+aiomysql://ledger:{PASSWORD}@db/ledger", "supported are"),
        (f"postgresql+psycopg2://ledger:{PASSWORD}@db/ledger", "driver 'psycopg2'"),
        ("sqlite:///ledger.db", "driver 'pysqlite'"),
        ("sqlite+aiosqlite:///:memory:", "in-memory"),
    ],
)
async def test_a_malformed_url_or_unknown_driver_is_one_line(url: str, message: str) -> None:
    line = assert_fails_cleanly(await ledgerctl("--database-url", url, "audit"))
    assert message in line


async def test_a_bad_url_in_the_environment_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://ledger:{PASSWORD}/ledger")
    assert "DATABASE_URL" in assert_fails_cleanly(await ledgerctl("audit"))


async def test_a_malformed_pool_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "lots")
    url = f"sqlite+aiosqlite:///{tmp_path / 'l.db'}"
    assert "DB_POOL_SIZE" in assert_fails_cleanly(await ledgerctl("--database-url", url, "audit"))


@postgres_only
async def test_a_password_given_as_a_query_parameter_is_masked(new_database: NewDatabase) -> None:
    url = make_url(await new_database()).update_query_dict({"password": PASSWORD})
    line = assert_fails_cleanly(
        await ledgerctl("--database-url", url.render_as_string(hide_password=False), "audit")
    )
    assert "ledgerctl migrate" in line


# --- SQLite files ----------------------------------------------------------------------


async def test_a_sqlite_file_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    run = await ledgerctl("--database-url", f"sqlite+aiosqlite:///{missing}/l.db", "migrate")
    assert "does not exist" in assert_fails_cleanly(run)
    assert not missing.exists()


async def test_a_directory_given_as_the_sqlite_file_is_refused(tmp_path: Path) -> None:
    run = await ledgerctl("--database-url", f"sqlite+aiosqlite:///{tmp_path}", "audit")
    assert "a directory" in assert_fails_cleanly(run)


@pytest.mark.parametrize("command", [("balance", "1"), ("deposit", "1", "5"), ("migrate",)])
async def test_a_file_that_is_not_a_database_is_refused_and_left_as_it_was(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "l.db"
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    before = digest(path)
    run = await ledgerctl("--database-url", f"sqlite+aiosqlite:///{path}", *command)
    assert "file is not a database" in assert_fails_cleanly(run)
    assert digest(path) == before


def unprivileged() -> list[str]:
    """A command prefix under which file permissions apply, even to root.

    root ignores permission bits through CAP_DAC_OVERRIDE; setpriv runs the command with
    that capability removed from its bounding set.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture
async def sqlite_ledger(tmp_path: Path) -> AsyncIterator[tuple[Path, Snapshot]]:
    """A migrated SQLite file holding one funded account; permissions restored after."""
    folder = tmp_path / "ledger"
    folder.mkdir()
    path = folder / "l.db"
    state = await seed(f"sqlite+aiosqlite:///{path}")
    yield path, state
    folder.chmod(0o755)
    for file in folder.iterdir():
        file.chmod(0o644)


async def test_a_read_only_sqlite_file_refuses_writes_and_still_answers_reads(
    sqlite_ledger: tuple[Path, Snapshot],
) -> None:
    path, state = sqlite_ledger
    prefix = unprivileged()
    path.chmod(0o444)
    url = f"sqlite+aiosqlite:///{path}"
    write = await ledgerctl_process("--database-url", url, "deposit", "1", "5", prefix=prefix)
    assert "read-only" in assert_fails_cleanly(write)
    read = await ledgerctl_process("--database-url", url, "balance", "1", prefix=prefix)
    assert (read.code, read.stdout.strip()) == (0, "account 1: 10.00 EUR")
    path.chmod(0o644)
    assert await read_back(url) == state


@pytest.mark.parametrize("command", [("balance", "1"), ("deposit", "1", "5")])
async def test_a_read_only_directory_is_one_line_and_changes_nothing(
    sqlite_ledger: tuple[Path, Snapshot], command: tuple[str, ...]
) -> None:
    path, state = sqlite_ledger
    prefix = unprivileged()
    path.parent.chmod(0o555)
    url = f"sqlite+aiosqlite:///{path}"
    run = await ledgerctl_process("--database-url", url, *command, prefix=prefix)
    assert "read-only" in assert_fails_cleanly(run)
    path.parent.chmod(0o755)
    assert await read_back(url) == state


# --- schema revisions, on both engines -------------------------------------------------


async def table_names(url: str) -> list[str]:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()


async def test_a_never_migrated_database_says_to_run_migrate_and_creates_nothing(
    new_database: NewDatabase,
) -> None:
    url = await new_database()
    run = await ledgerctl("--database-url", url, "deposit", "1", "5")
    assert "run `ledgerctl migrate`" in assert_fails_cleanly(run)
    assert await table_names(url) == []


@pytest.fixture
async def unknown_revision_url(new_database: NewDatabase) -> tuple[str, Snapshot]:
    """A database with data whose alembic_version names a revision this code lacks."""
    url = await new_database()
    state = await seed(url)
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": UNKNOWN_REVISION}
            )
    finally:
        await engine.dispose()
    return url, state


@pytest.mark.parametrize(
    ("command", "message"),
    [(("deposit", "1", "5"), "does not know"), (("migrate",), "cannot migrate")],
)
async def test_an_unknown_revision_is_one_line_and_changes_nothing(
    unknown_revision_url: tuple[str, Snapshot], command: tuple[str, ...], message: str
) -> None:
    url, state = unknown_revision_url
    line = assert_fails_cleanly(await ledgerctl("--database-url", url, *command))
    assert message in line
    assert UNKNOWN_REVISION in line
    assert await read_back(url) == state
    engine = create_engine(DatabaseSettings(url=url))
    try:
        assert await migrations.current_revision(engine) == UNKNOWN_REVISION
    finally:
        await engine.dispose()


# --- PostgreSQL server -----------------------------------------------------------------


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@postgres_only
async def test_a_postgres_server_that_is_down_is_one_line_without_the_password(
    new_database: NewDatabase,
) -> None:
    url = make_url(await new_database()).set(password=PASSWORD, port=unused_port())
    run = await ledgerctl_process(
        "--database-url", url.render_as_string(hide_password=False), "audit"
    )
    assert "cannot reach the database" in assert_fails_cleanly(run)


# The test server trusts every local connection, so a wrong password would be accepted:
# the refusals tried are a role and a database that do not exist.
@postgres_only
@pytest.mark.parametrize(
    ("change", "message"),
    [({"username": "no_such_role"}, "no_such_role"), ({"database": "no_such_db"}, "no_such_db")],
)
async def test_a_postgres_server_refusing_the_login_is_one_line_without_the_password(
    new_database: NewDatabase, change: dict[str, str], message: str
) -> None:
    await new_database()  # makes the test skip or fail like the others without a server
    url = make_url(POSTGRES_URL).set(password=PASSWORD, **change)  # type: ignore[arg-type]
    run = await ledgerctl("--database-url", url.render_as_string(hide_password=False), "audit")
    line = assert_fails_cleanly(run)
    assert message in line
    assert "does not exist" in line


# --- the connection pool ---------------------------------------------------------------


@pytest.fixture
async def one_connection_engine(new_database: NewDatabase) -> AsyncIterator[AsyncEngine]:
    url = await new_database()
    await seed(url)
    # The pool timeout is also asyncpg's connect timeout: it must leave time to open the one
    # connection on a loaded machine (50 ms did not, in a connect of its own), and the refused
    # checkout waits it out once.
    settings = DatabaseSettings(url=url, pool_size=1, max_overflow=0, pool_timeout=1)
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


async def test_an_exhausted_pool_fails_the_request_and_writes_nothing(
    one_connection_engine: AsyncEngine,
) -> None:
    sessions = create_session_factory(one_connection_engine)
    before = await snapshot(sessions)
    async with one_connection_engine.connect():
        with pytest.raises(PoolExhausted, match="DB_POOL_SIZE=1"):
            await AccountService(sessions).deposit(1, 5)
    assert pool_status(one_connection_engine).checked_out == 0
    assert await snapshot(sessions) == before
    await AccountService(sessions).deposit(1, 5)
    assert (await LedgerAuditor(sessions).verify()).ok


async def test_an_exhausted_pool_is_one_line_naming_the_settings_and_the_audit_stays_clean(
    new_database: NewDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await new_database()
    await seed(url)
    # 500 registrations at once through one connection: the last ones cannot get it within
    # 50 ms, since each holds it for a whole transaction (well over 0.1 ms). The timeout is
    # also asyncpg's connect timeout, so it must leave time to open that one connection.
    monkeypatch.setenv("DB_POOL_SIZE", "1")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "0")
    monkeypatch.setenv("DB_POOL_TIMEOUT", "0.05")
    run = await ledgerctl("--database-url", url, "demo", "--users", "500", "--transfers", "10")
    assert "DB_POOL_TIMEOUT=0.05s" in assert_fails_cleanly(run)
    monkeypatch.delenv("DB_POOL_TIMEOUT")
    audit = await ledgerctl("--database-url", url, "audit")
    assert audit.code == 0, audit.stdout + audit.stderr
