"""ledgerctl worker, jobs and dashboard, in a subprocess, the way a user runs them."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory
from models import Job
from services import AccountService, TransferService, UserService
from tests.support.backends import NewDatabase, sqlite_only
from tests.support.cli_process import assert_one_line_error, ledgerctl
from tests.support.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
async def migrated_url(new_database: NewDatabase) -> str:
    url = await new_database()
    done = await asyncio.to_thread(ledgerctl, url, "migrate")
    assert done.returncode == 0, done.stderr
    return url


@pytest.fixture
async def sessions_for(migrated_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the CLI's database, to set up data and watch the worker's effect."""
    engine = create_engine(DatabaseSettings(url=migrated_url))
    yield create_session_factory(engine)
    await engine.dispose()


async def _job_statuses(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(select(Job.status).order_by(Job.id))).all())


async def _wait_until_all_done(sessions: async_sessionmaker[AsyncSession]) -> None:
    # The worker is another process: poll its effect, boundedly.
    for _ in range(600):
        statuses = await _job_statuses(sessions)
        if statuses and set(statuses) == {"done"}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"jobs not done in time: {await _job_statuses(sessions)}")


async def _stop_worker_by_signal(
    url: str, sessions: async_sessionmaker[AsyncSession], signum: signal.Signals
) -> tuple[int, str, str]:
    """Start `ledgerctl worker`, wait until every job is done, signal it; its exit code
    and output."""
    worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "cli", "--database-url", url),
        *("worker", "--poll-interval", "0.05"),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _wait_until_all_done(sessions)
        worker.send_signal(signum)
        out, err = await asyncio.wait_for(worker.communicate(), timeout=60)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.communicate()
    assert worker.returncode is not None
    return worker.returncode, out.decode(), err.decode()


async def test_the_worker_runs_the_outbox_jobs_and_stops_on_sigterm(
    migrated_url: str, sessions_for: async_sessionmaker[AsyncSession]
) -> None:
    user = await UserService(sessions_for).register("worker@example.com", "Worker")
    account = await AccountService(sessions_for).open(user.id, "EUR")
    await AccountService(sessions_for).deposit(account.id, 1_000)
    code, out, err = await _stop_worker_by_signal(migrated_url, sessions_for, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    assert "SIGTERM: stopping; " in out
    assert out.strip().splitlines()[-1].startswith("worker stopped: claimed 1, done 1,")
    read = await asyncio.to_thread(ledgerctl, migrated_url, "dashboard", str(user.id), "--json")
    page = json.loads(read.stdout)
    assert [n["message"] for n in page["notifications"]] == [
        f"10.00 EUR deposited into account #{account.id}"
    ]


@sqlite_only
async def test_the_worker_stops_gracefully_on_sigint_too(
    migrated_url: str, sessions_for: async_sessionmaker[AsyncSession]
) -> None:
    user = await UserService(sessions_for).register("sigint@example.com", "Sigint")
    account = await AccountService(sessions_for).open(user.id, "EUR")
    await AccountService(sessions_for).deposit(account.id, 5)
    code, out, err = await _stop_worker_by_signal(migrated_url, sessions_for, signal.SIGINT)
    assert code == 0, err
    assert "worker stopped:" in out
    assert "interrupted" not in err


async def test_jobs_shows_the_queue_by_status(
    migrated_url: str, sessions_for: async_sessionmaker[AsyncSession]
) -> None:
    user = await UserService(sessions_for).register("jobs@example.com", "Jobs")
    a = await AccountService(sessions_for).open(user.id, "EUR")
    b = await AccountService(sessions_for).open(user.id, "EUR")
    await AccountService(sessions_for).deposit(a.id, 100)
    await TransferService(sessions_for).transfer(a.id, b.id, 40)
    statuses = await _job_statuses(sessions_for)
    stats = json.loads((await asyncio.to_thread(ledgerctl, migrated_url, "jobs", "--json")).stdout)
    assert stats["queued"] == statuses.count("queued") >= 2
    assert stats["total"] == len(statuses)
    assert stats["dead_jobs"] == []
    text = await asyncio.to_thread(ledgerctl, migrated_url, "jobs")
    assert text.returncode == 0
    assert text.stdout.startswith(f"jobs: {stats['queued']} queued")


async def test_the_dashboard_prints_a_user_s_page(
    migrated_url: str, sessions_for: async_sessionmaker[AsyncSession]
) -> None:
    user = await UserService(sessions_for).register("page@example.com", "Page Owner")
    account = await AccountService(sessions_for).open(user.id, "JPY")
    await AccountService(sessions_for).deposit(account.id, 1_500)
    done = await asyncio.to_thread(ledgerctl, migrated_url, "dashboard", str(user.id))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Page Owner <page@example.com> (user {user.id})"
    assert f"  #{account.id} 1500 JPY" in lines
    read = await asyncio.to_thread(ledgerctl, migrated_url, "dashboard", str(user.id), "--json")
    page = json.loads(read.stdout)
    assert page["summary"] == [
        {
            "accounts": 1,
            "balance": 1500,
            "currency": "JPY",
            "movements": 1,
            "received": 1500,
            "sent": 0,
        }
    ]


@sqlite_only  # the same parsing and messages on both engines; each run costs a process
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dashboard", "987654"), "does not exist"),
        (("dashboard", "x"), "user id"),
        (("dashboard", "1", "--recent", "0"), "limit"),
        (("worker", "--concurrency", "0"), "concurrency"),
        (("jobs", "--dead", "many"), "--dead"),
    ],
)
def test_bad_requests_print_one_line_and_exit_1(
    migrated_url: str, args: tuple[str, ...], message: str
) -> None:
    line = assert_one_line_error(ledgerctl(migrated_url, *args))
    assert message in line
