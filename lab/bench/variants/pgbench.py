"""Reference on PostgreSQL: pgbench, PostgreSQL's own C client (libpq), one process per run.

pgbench runs a script the benchmark writes: the bench's transfer (guarded debit and credit in
account-id order, then the `transfers` row) as one transaction, between random distinct
accounts of the same ledger, with amounts drawn as the bench's plans draw them. It cannot
read the plan's exact pairs, so it draws its own (seeded); the distribution is the same.

What is timed is pgbench's own work: from the first transaction's start to the last one's
end, read from its per-transaction log, so its process start and its connections (which the
other variants make untimed, in `open`) are not counted. Each client runs the same number of
transactions, so a run is the plan's length rounded down to a multiple of the clients.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import psycopg

from lab.bench.ledger_data import MAX_AMOUNT
from lab.bench.ops import Kind, Op, Tally
from lab.bench.sql import CREDIT, DEBIT, RECORD
from lab.bench.variants.base import Variant

FALLBACK_PATH: Final = "/usr/lib/postgresql/15/bin/pgbench"
STATEMENTS_COMMITTED: Final = 3  # both legs and the row
STATEMENTS_REFUSED: Final = 2  # both legs, then ROLLBACK


def pgbench_path() -> str | None:
    """The pgbench executable, or None when this machine has none."""
    found = shutil.which("pgbench")
    if found is not None:
        return found
    return FALLBACK_PATH if os.access(FALLBACK_PATH, os.X_OK) else None


def _pgbench(template: str, *names: str) -> str:
    return template.format(*(f":{name}" for name in names))


def script() -> str:
    """The transaction pgbench repeats: `lo`, `hi` and `seed` are set with -D.

    The debit reports whether it was allowed (a CTE counting the rows it changed, one round
    trip like the plain UPDATE), and the transaction commits only then, as the Python
    variants' `Refused` rolls back.
    """
    debit = _pgbench(DEBIT, "amount", "amount", "src", "amount")
    credit = _pgbench(CREDIT, "amount", "amount", "dst")
    record = _pgbench(RECORD, "src", "dst", "amount")
    guarded = f"WITH debited AS ({debit} RETURNING 1) SELECT count(*) AS ok FROM debited \\gset"
    return "\n".join(
        [
            "\\set src random(:lo, :hi)",
            "\\set dst random(:lo, :hi - 1)",
            "\\set dst case when :dst >= :src then :dst + 1 else :dst end",
            f"\\set amount random(1, {MAX_AMOUNT})",
            "BEGIN;",
            "\\if :src < :dst",
            guarded,
            f"{credit};",
            "\\else",
            f"{credit};",
            guarded,
            "\\endif",
            "\\if :ok",
            f"{record};",
            "COMMIT;",
            "\\else",
            "ROLLBACK;",
            "\\endif",
            "",
        ]
    )


class Pgbench(Variant):
    """pgbench with one connection per client (`-c clients -j` up to the cores); `pool` is
    not used: pgbench has no pool, every client holds its own connection."""

    key = "pgbench"
    label = "pgbench (C, libpq)"
    kinds = frozenset({Kind.TRANSFER})

    async def open(self) -> None:
        path = pgbench_path()
        if path is None:
            raise RuntimeError("pgbench is not installed (it comes with postgresql-15)")
        self._path = path
        self._folder = tempfile.TemporaryDirectory(prefix="bench-pgbench-")
        self._script = Path(self._folder.name) / "transfer.sql"
        self._script.write_text(script())
        with psycopg.connect(self.target.postgres_dsn) as connection:
            row = connection.execute("SELECT min(id), max(id), count(*) FROM accounts").fetchone()
        if row is None or row[2] < 2 or row[1] - row[0] + 1 != row[2]:
            raise RuntimeError(f"pgbench needs contiguous account ids, found {row}")
        self._low, self._high = int(row[0]), int(row[1])
        self._runs = 0

    async def close(self) -> None:
        self._folder.cleanup()

    async def run(self, kind: Kind, ops: Sequence[Op], clients: int) -> Tally:
        if kind is not Kind.TRANSFER:
            raise self.unsupported(kind)
        return await asyncio.to_thread(self._run_blocking, len(ops), clients)

    def _run_blocking(self, count: int, clients: int) -> Tally:
        self._runs += 1
        per_client = max(1, count // clients)
        prefix = Path(self._folder.name) / f"run{self._runs}"
        before = self._transfer_rows()
        command = [
            self._path,
            "--no-vacuum",
            f"--file={self._script}",
            f"--client={clients}",
            f"--jobs={min(clients, os.cpu_count() or 1)}",
            f"--transactions={per_client}",
            f"--random-seed={self._runs}",
            f"--define=lo={self._low}",
            f"--define=hi={self._high}",
            "--log",
            f"--log-prefix={prefix}",
            self.target.postgres_dsn,
        ]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        tally = Tally()
        if finished.returncode != 0:
            lines = (finished.stderr or finished.stdout).strip().splitlines()
            message = lines[-1] if lines else f"exit status {finished.returncode}"
            tally.fail(RuntimeError(f"pgbench: {message}"), 0)
        committed = self._transfer_rows() - before
        latencies, seconds = _read_logs(prefix)
        for index, latency_ns in enumerate(latencies):
            tally.record(1 if index < committed else 0, latency_ns)
        refused = len(latencies) - committed
        tally.meter.statements = STATEMENTS_COMMITTED * committed + STATEMENTS_REFUSED * refused
        tally.meter.commits = committed
        tally.elapsed_s = seconds
        return tally

    def _transfer_rows(self) -> int:
        with psycopg.connect(self.target.postgres_dsn) as connection:
            row = connection.execute("SELECT count(*) FROM transfers").fetchone()
        return int(row[0]) if row is not None else 0


def _read_logs(prefix: Path) -> tuple[list[int], float]:
    """Every transaction's latency (ns) from pgbench's logs, and the seconds from the first
    transaction's start to the last one's end.

    A log line is `client transaction latency_us script epoch_s epoch_us`, the epoch being
    when the transaction ended.
    """
    latencies: list[int] = []
    first_start = last_end = None
    for log in sorted(prefix.parent.glob(f"{prefix.name}.*")):
        for line in log.read_text().splitlines():
            fields = line.split()
            latency_us = int(fields[2])
            end_us = int(fields[4]) * 1_000_000 + int(fields[5])
            latencies.append(latency_us * 1_000)
            start_us = end_us - latency_us
            first_start = start_us if first_start is None else min(first_start, start_us)
            last_end = end_us if last_end is None else max(last_end, end_us)
    if first_start is None or last_end is None:
        return latencies, 0.0
    return latencies, (last_end - first_start) / 1e6
