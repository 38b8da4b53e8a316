"""The benchmark: it runs end to end, its JSON is complete, and its checks mean something."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.checks import audit_transfers
from bench.hops import HopCounter
from models import Account
from tests.ledger import open_account

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# `--quick` shrunk further: the very code path of the real run, every SQLite workload, two
# repetitions (so the rotated order and the paired ratios are exercised), few accounts so
# that concurrent clients collide.
TINY = (
    "--quick",
    "--no-postgres",
    "--reps",
    "2",
    "--accounts",
    "3",
    "--hop-ops",
    "50",
    "--transfer-ops",
    "40",
    "--clients",
    "4",
    "--pool",
    "3",
    "--read-ops",
    "20",
    "--read-clients",
    "3",
    "--read-pools",
    "2",
)
SQLITE_WORKLOADS = {"hops", "transfers", "point-reads", "dashboard"}


def run_bench(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """`ledgerctl bench ARGS` in a subprocess; `prelude` runs first in the same interpreter."""
    code = f"{prelude}\nimport sys\nfrom cli.main import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "bench", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def tiny_run(tiny_folder: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    path = tiny_folder / "bench.json"
    done = run_bench(*TINY, "--json", str(path), "--markdown", str(tiny_folder / "bench.md"))
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads(path.read_text(encoding="utf-8"))


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for workload in data["workloads"] for row in workload["rows"]]


def test_a_tiny_sqlite_run_reports_every_workload_with_paired_ratios(
    tiny_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    done, data = tiny_run
    assert {w["name"] for w in data["workloads"]} == SQLITE_WORKLOADS
    assert {s["name"] for s in data["skipped"]} == {"pg-transfers", "pg-latency"}
    assert data["versions"]["sqlite"]
    assert data["calibration"]["hop_us"].keys() == {"aiosqlite", "to_thread"}
    for workload in data["workloads"]:
        assert workload["title"] in done.stdout
        (reference,) = [row for row in workload["rows"] if row["reference"]]
        assert reference["ratio"]["paired"] == [1.0, 1.0]
        for row in workload["rows"]:
            assert [run["rep"] for run in row["runs"]] == [0, 1]
            assert all(run["ops_per_s"] > 0 for run in row["runs"])
            assert row["ops_per_s"]["min"] <= row["ops_per_s"]["median"]
            assert row["ops_per_s"]["median"] <= row["ops_per_s"]["max"]


def test_every_variant_meant_to_be_correct_passes_its_checks(
    tiny_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, data = tiny_run
    safe = [row for row in rows(data) if not row["unsafe"]]
    assert safe
    for row in safe:
        assert row["correct"], (row["key"], row["verdict"])
        assert row["errors"] == {}, row["key"]
        assert all(run["check"]["ok"] for run in row["runs"])


def test_the_naive_orm_is_flagged_exactly_when_its_audit_failed(
    tiny_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    done, data = tiny_run
    naive = [row for row in rows(data) if row["variant"] == "naive-orm"]
    assert {row["clients"] for row in naive} == {1, 4}
    for row in naive:
        failed = [run["check"] for run in row["runs"] if not run["check"]["ok"]]
        assert row["correct"] is (not failed)
        for check in failed:
            assert check["problems"]
            if check["lost_cents"] > 0:
                assert f"LOST {check['lost_cents']} cents" in check["text"]
        if failed:
            assert row["verdict"] != "yes"
            assert row["verdict"] in done.stdout
    # One client at a time cannot lose an update: read-modify-write is only wrong concurrently.
    (sequential,) = [row for row in naive if row["clients"] == 1]
    assert sequential["correct"]


def test_a_saved_run_renders_the_same_markdown_tables_again(
    tiny_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]], tiny_folder: Path
) -> None:
    _, data = tiny_run
    written = (tiny_folder / "bench.md").read_text(encoding="utf-8")
    for workload in data["workloads"]:
        assert f"#### {workload['title']}" in written
        for row in workload["rows"]:
            assert row["label"] in written
    again = run_bench(
        "--from-json", str(tiny_folder / "bench.json"), "--markdown", str(tiny_folder / "2.md")
    )
    assert again.returncode == 0, again.stderr
    assert (tiny_folder / "2.md").read_text(encoding="utf-8") == written


async def test_the_transfer_audit_reports_money_lost_by_an_overwritten_balance(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    account = await open_account(sessions, balance=10_000)
    assert (await audit_transfers(engine, committed=0)).ok
    # What a lost update leaves behind: a balance that its history does not explain.
    async with sessions() as session, session.begin():
        await session.execute(update(Account).where(Account.id == account.id).values(balance=9_250))
    check = await audit_transfers(engine, committed=0)
    assert not check.ok
    assert check.lost_cents == 750
    assert check.text == "LOST 750 cents, 1 balances ≠ history"


async def test_the_transfer_audit_reports_commits_that_left_no_row(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await open_account(sessions, balance=100)
    check = await audit_transfers(engine, committed=3)
    assert not check.ok
    assert "3 committed but 0 rows" in check.text


async def test_the_hop_counter_counts_one_hop_per_aiosqlite_call_and_to_thread(
    tmp_path: Path,
) -> None:
    async with aiosqlite.connect(tmp_path / "hops.db") as connection:
        with HopCounter() as hops:
            for _ in range(3):
                await connection.execute("SELECT 1")
            await asyncio.to_thread(sum, [1, 2])
        await connection.execute("SELECT 1")
    assert hops.count == 4


def test_plot_without_matplotlib_is_a_one_line_error_before_anything_runs(
    tmp_path: Path,
) -> None:
    done = run_bench(
        *TINY,
        "--plot",
        str(tmp_path / "chart.png"),
        "--json",
        str(tmp_path / "bench.json"),
        prelude="import sys; sys.modules['matplotlib'] = None",
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "ledgerctl: error: --plot needs matplotlib: pip install 'async-ledger[plot]' "
        "(or pip install matplotlib)"
    ]
    assert not (tmp_path / "bench.json").exists()


def test_an_unknown_workload_is_a_one_line_error() -> None:
    done = run_bench("--workloads", "transfers,nope", "--no-postgres")
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "unknown workload nope" in line
    assert "Traceback" not in done.stderr


def test_from_json_without_an_output_to_write_is_a_one_line_error(tmp_path: Path) -> None:
    done = run_bench("--from-json", str(tmp_path / "bench.json"))
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "give --plot or --markdown" in line
