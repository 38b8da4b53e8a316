"""`ledgerctl serve` refuses impossible options in one line, before it starts a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli_runs import ledgerctl


@pytest.mark.parametrize(
    ("option", "value", "refusal"),
    [
        ("--port", "99999", "--port must be 0 to 65535, got 99999"),
        ("--port", "-1", "--port must be 0 to 65535, got -1"),
        ("--workers", "0", "--workers must be 1 to 64, got 0"),
    ],
)
async def test_serve_refuses_an_impossible_option_in_one_line(
    tmp_path: Path, option: str, value: str, refusal: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    assert (await ledgerctl("--database-url", url, "migrate")).code == 0
    done = await ledgerctl("--database-url", url, "serve", option, value)
    assert refusal in done.one_line_error()
