"""ledgerctl end to end, in a subprocess, the way a user runs it.

A test that waits for the subprocess is a plain `def` (it never runs on the event loop), or
awaits it in a thread: a blocking wait on the loop fails the test (tests/support/loop_guards.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from tests.support.backends import NewDatabase, sqlite_only
from tests.support.cli_process import assert_one_line_error, ledgerctl
from tests.support.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
async def migrated_url(new_database: NewDatabase) -> str:
    url = await new_database()
    done = await asyncio.to_thread(ledgerctl, url, "migrate")
    assert done.returncode == 0, done.stderr
    assert "migrated empty -> " in done.stdout
    return url


def test_migrate_demo_and_audit_succeed(migrated_url: str) -> None:
    demo = ledgerctl(migrated_url, "demo", "--transfers", "200", "--concurrency", "20")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "money conserved: yes" in demo.stdout
    assert "audit ok" in demo.stdout
    assert "peak" in demo.stdout
    assert "transfer.completed jobs queued" in demo.stdout
    audit = ledgerctl(migrated_url, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    assert json.loads(audit.stdout)["ok"] is True


def test_migrate_twice_is_a_no_op(migrated_url: str) -> None:
    done = ledgerctl(migrated_url, "migrate")
    assert done.returncode == 0
    assert "already at revision" in done.stdout


def test_a_user_account_and_money_round_trip_with_json_reads(migrated_url: str) -> None:
    user = json.loads(
        ledgerctl(migrated_url, "user", "add", "cli@example.com", "Cli", "--json").stdout
    )
    account = json.loads(
        ledgerctl(migrated_url, "account", "open", str(user["id"]), "EUR", "--json").stdout
    )
    account_id = str(account["id"])
    assert ledgerctl(migrated_url, "deposit", account_id, "1050", "--key", "cli-1").returncode == 0
    assert ledgerctl(migrated_url, "withdraw", account_id, "50").returncode == 0
    balance = json.loads(ledgerctl(migrated_url, "balance", account_id, "--json").stdout)
    assert balance["balance"] == 1000
    history = json.loads(ledgerctl(migrated_url, "history", account_id, "--json").stdout)
    assert [t["kind"] for t in history["items"]] == ["withdrawal", "deposit"]
    exported = ledgerctl(migrated_url, "export", account_id)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert lines == list(reversed(history["items"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deposit", "1", "10.5"), "whole number of minor units"),
        (("deposit", "1", "-3"), "positive"),
        (("deposit", "x", "10"), "account id"),
        (("transfer", "1", "1", "5"), "to itself"),
        (("balance", "99999"), "does not exist"),
        (("export", "99999"), "does not exist"),
        (("account", "open", "1", "EURO"), "currency"),
        (("user", "add", "not-an-email", "Name"), "email"),
    ],
)
def test_bad_input_prints_one_line_and_exits_1(
    migrated_url: str, args: tuple[str, ...], message: str
) -> None:
    line = assert_one_line_error(ledgerctl(migrated_url, *args))
    assert message in line


@sqlite_only
async def test_an_unmigrated_database_says_to_run_migrate(new_database: NewDatabase) -> None:
    url = await new_database()
    line = assert_one_line_error(await asyncio.to_thread(ledgerctl, url, "balance", "1"))
    assert "ledgerctl migrate" in line


def test_a_malformed_command_line_exits_2_with_one_line() -> None:
    line = assert_one_line_error(ledgerctl("sqlite+aiosqlite:///unused.db", "transfer", "1"), 2)
    assert "error" in line


def test_a_bad_database_url_is_one_line_without_the_password() -> None:
    line = assert_one_line_error(ledgerctl("mysql://root:hunter2@db/x", "audit"))
    assert "DATABASE_URL" in line
    assert "hunter2" not in line


def _demo_read_one_line_then_close(url: str) -> tuple[str, int, str]:
    with subprocess.Popen(
        [sys.executable, "-m", "cli", "--database-url", url, "demo", "--transfers", "50"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read()
        return first, process.wait(timeout=120), stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(migrated_url: str) -> None:
    # `ledgerctl demo | head -1`: the pipe closes while the demo is still printing.
    first, code, stderr = _demo_read_one_line_then_close(migrated_url)
    assert first.startswith("demo on ")
    assert code == 1
    assert stderr == ""
