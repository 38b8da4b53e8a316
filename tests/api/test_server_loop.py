"""`ledgerctl serve` serves on uvloop when it is installed (it is, with uvicorn[standard])."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.api_server import serving
from tests.support.cli_runs import ledgerctl


async def test_a_served_request_runs_on_uvloop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    assert (await ledgerctl("--database-url", url, "migrate")).code == 0
    async with serving(url) as server, httpx.AsyncClient(base_url=server.url) as client:
        scraped = await client.get("/metrics")
    assert 'ledger_server_info{loop="uvloop.Loop"} 1.0' in scraped.text.splitlines()
