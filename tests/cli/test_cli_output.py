"""What ledgerctl prints: money with the currency's exponent, replays, refused numbers and
schemas, on both engines (in this process: see tests/support/cli_runs.py)."""

from __future__ import annotations

import json

import pytest

from tests.support.backends import NewDatabase
from tests.support.cli_runs import ledgerctl


@pytest.fixture(scope="module")
async def url(new_database: NewDatabase) -> str:
    """A migrated database with user 1, account 1 (EUR, 65.00) and account 2 (JPY, 6500)."""
    url = await new_database()
    for args in (
        ("migrate",),
        ("user", "add", "out@example.com", "Out"),
        ("account", "open", "1", "EUR"),
        ("account", "open", "1", "JPY"),
        ("deposit", "1", "6500"),
        ("deposit", "2", "6500"),
    ):
        run = await ledgerctl("--database-url", url, *args)
        assert run.code == 0, run.stderr
    return url


@pytest.mark.parametrize(
    ("account", "text"), [("1", "account 1: 65.00 EUR"), ("2", "account 2: 6500 JPY")]
)
async def test_balance_shows_the_currency_s_exponent(url: str, account: str, text: str) -> None:
    run = await ledgerctl("--database-url", url, "balance", account)
    assert run.stdout.strip() == text


async def test_balance_json_keeps_integer_minor_units(url: str) -> None:
    run = await ledgerctl("--database-url", url, "balance", "1", "--json")
    assert json.loads(run.stdout)["balance"] == 6500


async def test_a_transfer_line_shows_the_currency_s_exponent(url: str) -> None:
    run = await ledgerctl("--database-url", url, "withdraw", "1", "5")
    assert " 0.05 EUR at " in run.stdout


async def test_an_idempotent_replay_says_it_is_one(url: str) -> None:
    args = ("--database-url", url, "deposit", "1", "100", "--key", "replay-me")
    first, again = await ledgerctl(*args), await ledgerctl(*args)
    assert "replayed" not in first.stdout
    assert "replayed" in again.stdout
    assert again.stdout.split(" at ")[0] == first.stdout.split(" at ")[0]


async def test_an_idempotent_replay_says_it_is_one_in_json(url: str) -> None:
    args = ("--database-url", url, "deposit", "1", "100", "--key", "replay-json", "--json")
    first = json.loads((await ledgerctl(*args)).stdout)
    again = json.loads((await ledgerctl(*args)).stdout)
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert {**again, "replayed": False} == first


@pytest.mark.parametrize(
    "args",
    [
        ("deposit", "1", "\u0661\u0660\u0660"),  # Arabic-Indic 100
        ("deposit", "1", "1_000"),
        ("deposit", "1", "+100"),
        ("deposit", "1", " 100"),
        ("deposit", "\u0661", "100"),
        ("transfer", "1", "+2", "100"),
        ("history", "1", "--limit", "1_0"),
    ],
)
async def test_numbers_other_than_ascii_digits_are_refused_in_one_line(
    url: str, args: tuple[str, ...]
) -> None:
    before = await ledgerctl("--database-url", url, "history", "1", "--json")
    line = (await ledgerctl("--database-url", url, *args)).one_line_error()
    assert "ASCII digits" in line
    after = await ledgerctl("--database-url", url, "history", "1", "--json")
    assert after.stdout == before.stdout


async def test_a_numeric_option_other_than_ascii_digits_is_a_usage_error(url: str) -> None:
    run = await ledgerctl("--database-url", url, "demo", "--transfers", "\u0661\u0660")
    assert run.code == 2
    assert run.stderr.count("\n") == 1
    assert "ASCII digits" in run.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("user", "add", "a@example.com", "A"),
        ("account", "open", "1", "EUR"),
        ("deposit", "1", "5"),
        ("withdraw", "1", "5"),
        ("transfer", "1", "2", "5"),
        ("balance", "1"),
        ("history", "1"),
        ("audit",),
        ("dashboard", "1"),
        ("jobs",),
        ("worker", "--drain"),
        ("demo", "--transfers", "1"),
    ],
)
async def test_every_command_that_needs_the_schema_refuses_an_unmigrated_database(
    new_database: NewDatabase, args: tuple[str, ...]
) -> None:
    run = await ledgerctl("--database-url", await new_database(), *args)
    assert "run `ledgerctl migrate`" in run.one_line_error()
