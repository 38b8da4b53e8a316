"""`bench http --quick`: every server variant answers like the API under wrk, and the
ledger audits clean afterwards. A test of the harness and the answers, not of speed."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from lab.bench.http import scenarios
from lab.bench.http.runner import HttpOptions, execute
from lab.bench.http.wrk import INSTALL_HINT
from tests.support.backends import NewDatabase
from tests.support.databases import IN_CI
from tests.support.paths import PROJECT_ROOT


@pytest.fixture
def wrk() -> None:
    """wrk must be installed in CI; on a laptop the tests skip, saying how to install it."""
    if shutil.which("wrk") is None:
        if IN_CI:
            pytest.fail(f"CI requires wrk: {INSTALL_HINT}", pytrace=False)
        pytest.skip(INSTALL_HINT)


@pytest.mark.usefixtures("wrk")
async def test_every_variant_answers_under_wrk_and_the_audit_holds(
    backend: str, new_database: NewDatabase
) -> None:
    chosen = tuple(
        replace(s, engines=(backend,)) for s in scenarios.quick() if backend in s.engines
    )
    options = HttpOptions(
        scenarios=chosen,
        reps=1,
        seconds=1,
        warmup=0,
        share=True,
        databases={"sqlite" if backend == "sqlite" else "postgresql": await new_database()},
    )
    run = await execute(options, io.StringIO())

    assert run.failures == []
    measured = {(p.scenario, p.variant) for p in run.points}
    assert measured == {(s.name, v) for s in chosen for v in s.variants}
    for point in run.points:
        assert point.wrk.requests > 0, point
        assert point.errors == 0, point
        assert point.audit_problems == ()
    # Writes are counted in the database too: every 201 stored a transfer with its key.
    # (The in-memory variant stores nothing.)
    stored = [
        (p.keyed_transfers, p.wrk.requests)
        for p in run.points
        if p.scenario == "transfers" and p.variant != "memory"
    ]
    writers = next(s.variants for s in chosen if s.name == "transfers")
    assert len(stored) == len(writers) - 1
    for keyed, answered in stored:
        assert keyed is not None
        assert keyed >= answered


def test_without_wrk_it_stops_with_one_line_saying_how_to_install_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lab.bench", "http", "--quick", "--no-postgres"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "apt-get install -y wrk" in done.stderr
