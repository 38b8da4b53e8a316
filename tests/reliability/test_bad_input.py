"""Bad input, through the API and through ledgerctl: a typed error, or one line and exit 1.

Every case runs against one seeded ledger per engine and must leave it exactly as it was:
same balances, same number of transfers and users, and a clean audit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models.transfer import DESCRIPTION_MAX_LENGTH, IDEMPOTENCY_KEY_MAX_LENGTH
from models.user import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH
from services import AccountService, LedgerAuditor, TransferService, UserService
from services.errors import (
    AccountNotFound,
    DuplicateEmail,
    IdempotencyConflict,
    InvalidAmount,
    InvalidCurrency,
    InvalidEmail,
    InvalidId,
    InvalidText,
    LedgerError,
    UserNotFound,
)
from tests.support.backends import NewDatabase
from tests.support.cli_runs import ledgerctl
from tests.support.ledger import open_account, snapshot


@dataclass(frozen=True)
class Seeded:
    """A small ledger: Ada owns a EUR account holding 1,000 (deposited with key 'seed'),
    an empty EUR account and a USD account; Jürgen is registered too."""

    url: str
    sessions: async_sessionmaker[AsyncSession]
    ada: int
    eur: int
    empty: int
    usd: int


@pytest.fixture(scope="module")
async def seeded(new_database: NewDatabase) -> AsyncIterator[Seeded]:
    url = await new_database()
    engine = create_engine(DatabaseSettings(url=url))
    await migrations.upgrade(engine)
    sessions = create_session_factory(engine)
    users, accounts = UserService(sessions), AccountService(sessions)
    ada = await users.register("ada@example.com", "Ada")
    await users.register("jürgen@beispiel.de", "Jürgen")
    eur = await accounts.open(ada.id, "EUR")
    await accounts.deposit(eur.id, 1_000, idempotency_key="seed")
    empty = await accounts.open(ada.id, "EUR")
    usd = await accounts.open(ada.id, "USD")
    await accounts.deposit(usd.id, 500)
    yield Seeded(url, sessions, ada.id, eur.id, empty.id, usd.id)
    await engine.dispose()


async def assert_unchanged_by(ledger: Seeded, action: Callable[[], Awaitable[Any]]) -> None:
    """Run `action` and assert it changed no row and left the audit clean."""
    before = await snapshot(ledger.sessions)
    await action()
    assert await snapshot(ledger.sessions) == before
    report = await LedgerAuditor(ledger.sessions).verify()
    assert report.ok, report.problems


# --- the API -------------------------------------------------------------------------

Call = Callable[[Seeded], Awaitable[object]]

BAD_AMOUNTS: list[Any] = [0, -1, 1.5, "10", True, 2**63, 10**30, float("nan"), None]

AMOUNT_CALLS: dict[str, Callable[[Any], Call]] = {
    "deposit": lambda v: lambda s: AccountService(s.sessions).deposit(s.eur, v),
    "withdraw": lambda v: lambda s: AccountService(s.sessions).withdraw(s.eur, v),
    "transfer": lambda v: lambda s: TransferService(s.sessions).transfer(s.eur, s.empty, v),
}

UNKNOWN_ID = 999_999
BAD_IDS: list[tuple[str, Any, bool]] = [
    # (label, value, whether it is a well-formed id that simply does not exist)
    ("0", 0, False),
    ("-1", -1, False),
    ("'x'", "x", False),
    ("unknown", UNKNOWN_ID, True),
    ("2**63", 2**63, False),
    ("2**63-1", 2**63 - 1, True),
]

ID_CALLS: dict[str, tuple[Callable[[Any], Call], type[LedgerError]]] = {
    "deposit into": (
        lambda v: lambda s: AccountService(s.sessions).deposit(v, 10),
        AccountNotFound,
    ),
    "withdraw from": (
        lambda v: lambda s: AccountService(s.sessions).withdraw(v, 10),
        AccountNotFound,
    ),
    "transfer from": (
        lambda v: lambda s: TransferService(s.sessions).transfer(v, s.empty, 10),
        AccountNotFound,
    ),
    "transfer to": (
        lambda v: lambda s: TransferService(s.sessions).transfer(s.eur, v, 10),
        AccountNotFound,
    ),
    "balance of": (lambda v: lambda s: AccountService(s.sessions).balance(v), AccountNotFound),
    "history of": (lambda v: lambda s: AccountService(s.sessions).history(v), AccountNotFound),
    "open for user": (
        lambda v: lambda s: AccountService(s.sessions).open(v, "EUR"),
        UserNotFound,
    ),
    "user": (lambda v: lambda s: UserService(s.sessions).get(v), UserNotFound),
}

BAD_CURRENCIES: list[Any] = ["eur", "EURO", "", "€€€", None]

BAD_EMAILS: list[tuple[str, Any, type[LedgerError]]] = [
    ("empty", "", InvalidEmail),
    ("blank", "   ", InvalidEmail),
    ("no @", "ada.example.com", InvalidEmail),
    ("10,000 characters", "a" * 10_000 + "@example.com", InvalidEmail),
    ("a space", "ada@exam ple.com", InvalidEmail),
    ("not text", None, InvalidEmail),
    ("other case", "ADA@Example.COM", DuplicateEmail),
    ("padded", "  ada@example.com ", DuplicateEmail),
    ("unicode in NFD", "ju\u0308rgen@beispiel.de", DuplicateEmail),
    ("unicode upper case", "JÜRGEN@BEISPIEL.DE", DuplicateEmail),
    ("zero-width space", "ada\u200b@example.com", InvalidEmail),
    ("bidi override", "ada\u202e@example.com", InvalidEmail),
    ("lone surrogate", "\ud800@example.com", InvalidEmail),
]

BAD_TEXTS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("blank", "   "),
    ("10,000 characters", "x" * 10_000),
    ("NUL byte", "nul\x00byte"),
    ("escape sequence", "\x1b[2J"),
    ("lone surrogate", "\ud800"),
    ("not text", 42),
]


def open_in(currency: Any) -> Call:
    return lambda s: AccountService(s.sessions).open(s.ada, currency)


def register(email: Any) -> Call:
    return lambda s: UserService(s.sessions).register(email, "Someone")


def deposit_described(description: Any) -> Call:
    return lambda s: AccountService(s.sessions).deposit(s.eur, 10, description=description)


def transfer_keyed(key: Any) -> Call:
    return lambda s: TransferService(s.sessions).transfer(s.eur, s.empty, 10, idempotency_key=key)


def api_cases() -> list[Any]:
    cases: list[Any] = []
    for op, make in AMOUNT_CALLS.items():
        for value in BAD_AMOUNTS:
            cases.append(pytest.param(make(value), InvalidAmount, id=f"{op} amount={value!r}"))
    for where, (make, not_found) in ID_CALLS.items():
        for label, value, exists_as_id in BAD_IDS:
            error = not_found if exists_as_id else InvalidId
            cases.append(pytest.param(make(value), error, id=f"{where} id={label}"))
    for value in BAD_CURRENCIES:
        cases.append(pytest.param(open_in(value), InvalidCurrency, id=f"currency={value!r}"))
    for label, value, error in BAD_EMAILS:
        cases.append(pytest.param(register(value), error, id=f"email {label}"))
    for label, value in BAD_TEXTS:
        cases.append(pytest.param(deposit_described(value), InvalidText, id=f"description {label}"))
        cases.append(pytest.param(transfer_keyed(value), InvalidText, id=f"key {label}"))
    cases.append(
        pytest.param(transfer_keyed("seed"), IdempotencyConflict, id="key of another request")
    )
    return cases


@pytest.mark.parametrize(("call", "error"), api_cases())
async def test_the_api_refuses_bad_input_with_a_typed_error_and_changes_nothing(
    seeded: Seeded, call: Call, error: type[LedgerError]
) -> None:
    async def attempt() -> None:
        with pytest.raises(error):
            await call(seeded)

    await assert_unchanged_by(seeded, attempt)


# --- the CLI -------------------------------------------------------------------------

# Command lines cannot carry NUL bytes; bytes that are not UTF-8 reach Python as lone
# surrogates (PEP 383), which is what "\udcff" stands for here.
NOT_UTF8 = "\udcff"

CLI_CASES: list[tuple[str, tuple[str, ...]]] = [
    *[
        (f"amount {value!r}", ("deposit", "{eur}", value))
        for value in ["0", "-1", "1.5", "True", str(2**63), str(10**30), "nan", "", "ten"]
    ],
    ("withdraw amount '-1'", ("withdraw", "{eur}", "-1")),
    ("transfer amount '1.5'", ("transfer", "{eur}", "{empty}", "1.5")),
    *[
        case
        for value in ["0", "-1", "x", str(UNKNOWN_ID), str(2**63), "1; DROP TABLE accounts"]
        for case in [
            (f"balance of {value!r}", ("balance", value)),
            (f"deposit into {value!r}", ("deposit", value, "5")),
            (f"transfer from {value!r}", ("transfer", value, "{empty}", "5")),
            (f"transfer to {value!r}", ("transfer", "{eur}", value, "5")),
            (f"open for user {value!r}", ("account", "open", value, "EUR")),
        ]
    ],
    *[
        (f"currency {value!r}", ("account", "open", "{ada}", value))
        for value in ["eur", "EURO", "", "€€€"]
    ],
    *[
        (f"email {label}", ("user", "add", value, "Someone"))
        for label, value in [
            ("empty", ""),
            ("no @", "ada.example.com"),
            ("10,000 characters", "a" * 10_000 + "@example.com"),
            ("other case", "ADA@EXAMPLE.COM"),
            ("unicode in NFD", "ju\u0308rgen@beispiel.de"),
            ("zero-width space", "ada\u200b@example.com"),
            ("not UTF-8", NOT_UTF8 + "@example.com"),
        ]
    ],
    *[
        (f"description {label}", ("deposit", "{eur}", "5", "--description", value))
        for label, value in [
            ("empty", ""),
            ("10,000 characters", "x" * 10_000),
            ("escape sequence", "\x1b[2J"),
            ("not UTF-8", NOT_UTF8),
        ]
    ],
    *[
        (f"key {label}", ("transfer", "{eur}", "{empty}", "5", "--key", value))
        for label, value in [
            ("empty", ""),
            ("10,000 characters", "k" * 10_000),
            ("escape sequence", "\x1b"),
            ("padded", " padded"),
            ("not UTF-8", NOT_UTF8),
            ("of another request", "seed"),
        ]
    ],
]


@pytest.mark.parametrize("argv", [pytest.param(argv, id=label) for label, argv in CLI_CASES])
async def test_the_cli_prints_one_line_exits_1_and_changes_nothing(
    seeded: Seeded, argv: tuple[str, ...]
) -> None:
    ids = {"eur": seeded.eur, "empty": seeded.empty, "ada": seeded.ada}
    args = [arg.format(**ids) if arg.startswith("{") else arg for arg in argv]

    async def attempt() -> None:
        run = await ledgerctl("--database-url", seeded.url, *args)
        run.one_line_error()
        assert run.stdout == ""

    await assert_unchanged_by(seeded, attempt)


# --- what is accepted, and the limits --------------------------------------------------

SQL_FRAGMENTS = ["'; DROP TABLE transfers; --", "1 OR 1=1", 'x"); DELETE FROM accounts; --']


@pytest.mark.parametrize("fragment", SQL_FRAGMENTS)
async def test_sql_fragments_are_stored_verbatim_and_touch_no_table(
    sessions: async_sessionmaker[AsyncSession], fragment: str
) -> None:
    a = await open_account(sessions, balance=100)
    b = await open_account(sessions)
    transfers = TransferService(sessions)
    record = await transfers.transfer(a.id, b.id, 5, idempotency_key=fragment, description=fragment)
    assert (record.idempotency_key, record.description) == (fragment, fragment)
    retry = await transfers.transfer(a.id, b.id, 5, idempotency_key=fragment, description=fragment)
    assert retry == replace(record, replayed=True)
    history = await AccountService(sessions).history(b.id)
    assert [(t.idempotency_key, t.description) for t in history.items] == [(fragment, fragment)]
    async with sessions() as session:
        tables = await session.run_sync(lambda s: inspect(s.connection()).get_table_names())
    assert {"users", "accounts", "transfers"} <= set(tables)
    assert (await snapshot(sessions)).transfers == 2  # the opening deposit and this one


async def test_a_unicode_email_is_accepted_and_stored_in_nfc_lower_case(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    user = await UserService(sessions).register("Ju\u0308rgen@Beispiel.de", "Jürgen")
    assert user.email == "jürgen@beispiel.de"


@pytest.mark.parametrize(
    ("what", "limit"),
    [
        ("email", EMAIL_MAX_LENGTH),
        ("name", NAME_MAX_LENGTH),
        ("description", DESCRIPTION_MAX_LENGTH),
        ("idempotency_key", IDEMPOTENCY_KEY_MAX_LENGTH),
    ],
)
async def test_text_at_its_length_limit_is_accepted_and_one_more_character_is_not(
    sessions: async_sessionmaker[AsyncSession], what: str, limit: int
) -> None:
    def sized(length: int) -> str:
        return (
            "a" * (length - len("@example.com")) + "@example.com"
            if what == "email"
            else ("a" * length)
        )

    async def attempt(length: int) -> object:
        if what in ("email", "name"):
            email, name = (
                (sized(length), "Name") if what == "email" else ("n@example.com", sized(length))
            )
            return await UserService(sessions).register(email, name)
        account = await open_account(sessions)
        text = sized(length)
        return await AccountService(sessions).deposit(
            account.id,
            1,
            idempotency_key=text if what == "idempotency_key" else None,
            description=text if what == "description" else None,
        )

    expected = InvalidEmail if what == "email" else InvalidText
    with pytest.raises(expected, match=str(limit)):
        await attempt(limit + 1)
    await attempt(limit)
