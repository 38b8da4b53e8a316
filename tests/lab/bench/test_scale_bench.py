"""`bench scale`: a tiny run end to end (SQLite), its loaded ledgers pass the audit, its
table has every operation; and the bulk loader's ledger is one the auditor accepts."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lab.bench.scale.loader import grow, open_ledger
from lab.bench.scale.measure import OPERATIONS
from services import LedgerAuditor
from tests.support.paths import PROJECT_ROOT


def test_a_tiny_scale_run_measures_every_operation_at_every_size(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "lab.bench", "scale", "--no-postgres"),
            *("--sizes", "200,400", "--calls", "1", "--json", str(out)),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    sizes = json.loads(out.read_text())["sizes"]
    assert [(s["engine"], s["size"], s["audit_ok"]) for s in sizes] == [
        ("sqlite", 200, True),
        ("sqlite", 400, True),
    ]
    assert all(set(s["median_ms"]) == set(OPERATIONS) for s in sizes)
    assert all(operation in run.stdout for operation in OPERATIONS)


async def test_the_bulk_loaded_ledger_passes_the_audit_as_it_grows(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    engine = sessions.kw["bind"]
    ledger = await open_ledger(sessions)
    rng = random.Random(1)
    for size in (100, 300):
        await grow(engine, ledger, size, rng)
        report = await LedgerAuditor(sessions).verify()
        assert report.ok, report.problems
        assert report.transfers_checked == size
