"""The benchmark: it runs end to end, its JSON is complete, and its checks mean something."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, migrations
from lab.bench.checks import audit_transfers
from lab.bench.hops import HopCounter
from lab.bench.latency import Latency, percentile
from lab.bench.ledger_data import OPENING_BALANCE, reset, seed
from lab.bench.ops import Kind, Meter, Op
from lab.bench.report import millis
from lab.bench.targets import Target
from lab.bench.variants.base import AsyncOperation, AsyncVariant, BlockingOperation, BlockingVariant
from lab.bench.variants.pgbench import Pgbench
from lab.bench.workloads.jobs import check_jobs
from models import Account
from tests.support.backends import NewDatabase, postgres_direct_only, postgres_only
from tests.support.broker import BROKER_URL, require_broker
from tests.support.ledger import open_account
from tests.support.paths import PROJECT_ROOT
from tests.support.pgbouncer import pgbouncer_executable

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
    "--job-ops",
    "20",
)
SQLITE_WORKLOADS = {
    "hops",
    "transfers",
    "point-reads",
    "dashboard",
    "jobs",
    "jobs-noop",
    "jobs-pickup",
}


def run_bench(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m lab.bench ARGS` in a subprocess; `prelude` runs first in the same interpreter."""
    code = (
        f"{prelude}\nimport sys\nfrom lab.bench.command import main\nsys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
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


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of every body row of the Markdown tables, in order."""
    body = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| variant ")
    ]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in body]


def test_a_tiny_sqlite_run_reports_every_workload_with_paired_ratios(
    tiny_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    done, data = tiny_run
    assert {w["name"] for w in data["workloads"]} == SQLITE_WORKLOADS
    assert {s["name"] for s in data["skipped"]} == {
        "pg-transfers",
        "pg-latency",
        "pg-jobs",
        "pg-jobs-noop",
        "pg-jobs-enqueue",
        "pg-jobs-pickup",
        "pg-events",
        "pg-events-latency",
    }
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


def test_every_row_and_run_of_a_tiny_run_reports_its_p50_and_p99_latency(
    tiny_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, data = tiny_run
    for row in rows(data):
        for figures in (row["latency_ms"], *(run["latency_ms"] for run in row["runs"])):
            assert figures["p50"] > 0, row["key"]
            assert figures["p99"] >= figures["p50"], row["key"]


def test_the_terminal_and_markdown_tables_show_each_rows_latency(
    tiny_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]], tiny_folder: Path
) -> None:
    done, data = tiny_run
    written = (tiny_folder / "bench.md").read_text(encoding="utf-8")
    assert done.stdout.count("p50 ms  p99 ms") == len(data["workloads"])
    assert [cells[7:9] for cells in markdown_rows(written)] == [
        [millis(row["latency_ms"]["p50"]), millis(row["latency_ms"]["p99"])] for row in rows(data)
    ]


def test_a_run_saved_without_latency_renders_a_dash_in_its_place(
    tiny_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]], tiny_folder: Path
) -> None:
    _, data = tiny_run
    old = json.loads(json.dumps(data))
    for row in rows(old):
        del row["latency_ms"]
        for run in row["runs"]:
            del run["latency_ms"]
    (tiny_folder / "old.json").write_text(json.dumps(old), encoding="utf-8")
    again = run_bench(
        "--from-json", str(tiny_folder / "old.json"), "--markdown", str(tiny_folder / "old.md")
    )
    assert again.returncode == 0, again.stderr
    rendered = markdown_rows((tiny_folder / "old.md").read_text(encoding="utf-8"))
    assert len(rendered) == len(rows(data))
    assert all(cells[7:9] == ["-", "-"] for cells in rendered)


@postgres_only
async def test_a_tiny_postgres_transfer_run_has_latency_at_every_client_level(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    admin_url = await new_database()
    done = await asyncio.to_thread(
        run_bench,
        *("--workloads", "pg-transfers", "--reps", "1", "--accounts", "20"),
        *("--pg-transfer-ops", "30", "--pg-clients", "3,6", "--pg-pool", "3"),
        *("--postgres-url", admin_url, "--json", str(tmp_path / "pg.json")),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "pg.json").read_text(encoding="utf-8"))
    (workload,) = data["workloads"]
    variants = {row["variant"] for row in workload["rows"]}
    assert {(row["variant"], row["clients"]) for row in workload["rows"]} == {
        (variant, clients) for variant in variants for clients in (1, 3, 6)
    }
    for row in workload["rows"]:
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"], row["key"]


@postgres_only
async def test_pgbench_commits_a_transfer_only_when_its_guarded_debit_was_allowed(
    new_database: NewDatabase,
) -> None:
    url = await new_database()
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
        ledger = await seed(engine, 2)
        poor, rich = ledger.account_ids
        # Every cent of `poor` moved to `rich`: each transfer out of `poor` is refused
        # until one from `rich` has paid into it.
        await reset(engine, ledger, [Op(poor, rich, OPENING_BALANCE // 20)] * 20)
        variant = Pgbench(Target(url), 1)
        await variant.open()
        try:
            tally = await variant.run(Kind.TRANSFER, [Op(0)] * 60, 3)
        finally:
            await variant.close()
        assert tally.error_count == 0
        assert len(tally.latencies_ns) == tally.completed == 60
        assert 0 < tally.value < 60
        assert tally.meter.commits == tally.value
        assert tally.elapsed_s is not None
        assert tally.elapsed_s > 0
        check = await audit_transfers(engine, committed=tally.value + 20)
        assert check.ok, check.problems
    finally:
        await engine.dispose()


def test_a_tiny_sqlite_job_drain_did_every_job_exactly_once_with_1_and_4_workers(
    tiny_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, data = tiny_run
    (workload,) = [w for w in data["workloads"] if w["name"] == "jobs"]
    assert [(row["clients"], row["reference"]) for row in workload["rows"]] == [
        (1, True),
        (4, False),
    ]
    for row in workload["rows"]:
        assert [run["completed"] for run in row["runs"]] == [20, 20]
        assert [run["check"]["text"] for run in row["runs"]] == ["yes", "yes"]
        assert row["errors"] == {}


@postgres_only
async def test_a_tiny_postgres_job_drain_did_every_job_exactly_once_with_1_and_4_workers(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    admin_url = await new_database()
    done = await asyncio.to_thread(
        run_bench,
        *("--workloads", "pg-jobs", "--reps", "1", "--accounts", "5", "--job-ops", "30"),
        *("--postgres-url", admin_url, "--json", str(tmp_path / "pg.json")),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "pg.json").read_text(encoding="utf-8"))
    (workload,) = data["workloads"]
    assert [row["clients"] for row in workload["rows"]] == [1, 4]
    for row in workload["rows"]:
        (run,) = row["runs"]
        assert run["completed"] == 30
        assert run["check"]["ok"], run["check"]


async def test_the_job_check_reports_a_job_left_queued_and_its_missing_notification(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await open_account(sessions, balance=500)  # its deposit enqueues one job
    check = await check_jobs(engine, expected=1)
    assert not check.ok
    assert check.text == "0 of 1 jobs done, 1 queued, 1 jobs without their notification"


def test_a_percentile_interpolates_between_the_two_closest_ranks() -> None:
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([10, 20, 30, 40], 99) == pytest.approx(39.7)
    assert percentile([7], 99) == 7


OP_SECONDS = 0.002


class SleepingAsync(AsyncVariant):
    """Each operation takes OP_SECONDS; account 0 fails after it."""

    key = "sleeping-async"
    label = "sleeping async"
    kinds = frozenset({Kind.SELECT_ONE})

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def operation(self, kind: Kind) -> AsyncOperation:
        async def operation(op: Op, meter: Meter) -> int:
            await asyncio.sleep(OP_SECONDS)
            if op.account == 0:
                raise RuntimeError("failed on purpose")
            return 1

        return operation


class SleepingBlocking(BlockingVariant):
    """The blocking twin of SleepingAsync."""

    key = "sleeping-blocking"
    label = "sleeping blocking"
    kinds = frozenset({Kind.SELECT_ONE})

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def operation(self, kind: Kind) -> BlockingOperation:
        def operation(op: Op, meter: Meter) -> int:
            time.sleep(OP_SECONDS)
            if op.account == 0:
                raise RuntimeError("failed on purpose")
            return 1

        return operation


@pytest.mark.parametrize("variant", [SleepingAsync, SleepingBlocking])
@pytest.mark.parametrize("clients", [1, 3])
async def test_every_operation_failed_or_not_is_timed_from_start_to_completion(
    variant: type[AsyncVariant | BlockingVariant], clients: int
) -> None:
    ops = [Op(account=n % 4) for n in range(8)]
    tally = await variant(Target("sqlite+aiosqlite://"), 1).run(Kind.SELECT_ONE, ops, clients)
    assert tally.completed == 6
    assert tally.error_count == 2
    assert len(tally.latencies_ns) == len(ops)
    assert min(tally.latencies_ns) >= OP_SECONDS * 1e9
    assert Latency.of(tally.latencies_ns).p50_ms >= OP_SECONDS * 1e3


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
        "bench: error: --plot needs matplotlib: pip install 'async-ledger[plot]' "
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


@postgres_direct_only
async def test_a_tiny_postgres_transfer_run_has_correct_rows_through_pgbouncer(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    pgbouncer_executable()  # the benchmark starts its own PgBouncer
    admin_url = await new_database()
    done = await asyncio.to_thread(
        run_bench,
        *("--workloads", "pg-transfers", "--reps", "1", "--accounts", "10"),
        *("--pg-transfer-ops", "20", "--pg-clients", "3", "--pg-pool", "3"),
        *("--postgres-url", admin_url, "--json", str(tmp_path / "pg.json")),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (workload,) = json.loads((tmp_path / "pg.json").read_text(encoding="utf-8"))["workloads"]
    pooled = [row for row in workload["rows"] if row["variant"].endswith("-pgbouncer")]
    assert {(row["variant"], row["clients"]) for row in pooled} == {
        (variant, clients)
        for variant in ("service-pgbouncer", "batcher-pgbouncer")
        for clients in (1, 3)
    }
    for row in pooled:
        (run,) = row["runs"]
        assert (run["completed"], run["errors"], run["check"]["ok"]) == (20, {}, True), row["key"]


def test_a_file_the_benchmark_cannot_write_is_a_one_line_error(tmp_path: Path) -> None:
    saved = PROJECT_ROOT / "docs" / "bench.json"
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    done = run_bench("--from-json", str(saved), "--markdown", str(not_a_folder / "b.md"))
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("bench: error:")
    assert "File exists" in line or "Not a directory" in line


@postgres_direct_only
async def test_a_tiny_events_run_compares_the_relay_with_its_peers_and_times_end_to_end(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    await require_broker()
    admin_url = await new_database()
    done = await asyncio.to_thread(
        run_bench,
        *("--workloads", "pg-events,pg-events-latency", "--reps", "1", "--accounts", "5"),
        *("--event-ops", "60", "--broker-url", BROKER_URL, "--no-pgbouncer"),
        *("--postgres-url", admin_url, "--json", str(tmp_path / "events.json")),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "events.json").read_text(encoding="utf-8"))
    throughput, latency = data["workloads"]
    assert {row["key"].split("@")[0] for row in throughput["rows"]} == {
        "aio-pika-pipelined",
        "aio-pika-await-each",
        "relay",
        "job-drain",
    }
    (end_to_end,) = latency["rows"]
    for row in [*throughput["rows"], end_to_end]:
        assert row["correct"], row
    # Per event: the peers time each publish, the end-to-end row each event's commit to its
    # consumer's commit; the relay confirms whole batches, so its row has throughput only.
    timed = [row for row in [*throughput["rows"], end_to_end] if row["variant"] != "relay"]
    for row in timed:
        assert row["latency_ms"]["p50"] > 0, row["key"]
