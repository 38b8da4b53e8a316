"""`ledgerctl audit` says how far it got: a line per range read (at most one a second)."""

from __future__ import annotations

import io

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cli.progress import AuditProgress
from services import LedgerAuditor, TransferService
from tests.support.ledger import open_account


async def test_the_audit_progress_names_the_transfer_ids_read_so_far(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await open_account(sessions, balance=10)
    b = await open_account(sessions, balance=1)
    await TransferService(sessions).transfer(a.id, b.id, 3)
    out = io.StringIO()  # not a terminal: one line each
    progress = AuditProgress(out, interval=0)

    report = await LedgerAuditor(sessions).verify(progress=progress, range_size=2)
    progress.finish()

    lines = out.getvalue().splitlines()
    assert report.ok
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "audit: history read up to transfer 2 of 3",
        "audit: history read up to transfer 3 of 3",
    ]
    assert lines[-1].startswith("audit: done in ")


def test_a_quick_audit_prints_no_progress() -> None:
    out = io.StringIO()
    progress = AuditProgress(out, interval=3600)
    progress(1, 2)
    progress(2, 2)
    progress.finish()
    assert out.getvalue() == ""
