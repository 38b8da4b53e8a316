"""A Hypothesis state machine drives the services and a plain in-memory ledger side by side.

Random sequences of register / open / deposit / withdraw / transfer / retry-with-the-same-
key; after every step the outcome (the record, or the type of the error), the balances,
the row counts and the history of every account the step touched must agree with the
model. SQLite runs more examples than PostgreSQL; both stay within a few seconds. Under
CI=true Hypothesis loads its "ci" profile (derandomised, no example database), and the
sizes below are applied on top of it.

Hypothesis calls rules synchronously, so the machine runs on a worker thread with an
event loop and an engine of its own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models import Base
from services import AccountService, TransferRecord, TransferService, UserService
from services.errors import (
    AccountNotFound,
    CurrencyMismatch,
    DuplicateEmail,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidCurrency,
    InvalidEmail,
    LedgerError,
    SameAccount,
    UserNotFound,
)
from services.validation import MAX_AMOUNT
from tests.support.backends import NewDatabase
from tests.support.ledger import snapshot

T = TypeVar("T")

EXAMPLES = {"sqlite": 20, "postgresql": 8}
STEPS = 20


def model_settings(backend: str) -> settings:
    """The run's size per engine, on top of whichever profile is loaded.

    MODEL_EXAMPLES=500 runs a deeper search on both engines, for a run by hand.
    """
    deeper = os.environ.get("MODEL_EXAMPLES")
    return settings(
        max_examples=int(deeper) if deeper else EXAMPLES[backend],
        stateful_step_count=STEPS,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


UNKNOWN_ID = 999_999
# Each input email with the stored form the model expects (None: refused as malformed).
EMAILS: dict[str, str | None] = {
    "ada@example.com": "ada@example.com",
    "ADA@Example.com": "ada@example.com",
    "bob@example.com": "bob@example.com",
    " bob@example.com": "bob@example.com",
    "carol@example.com": "carol@example.com",
    "Dora@Example.com": "dora@example.com",
    "not-an-email": None,
}
CURRENCIES = ["EUR", "USD", "eur"]
# Mostly ordinary amounts; one in ten is not positive, one in ten the 64-bit maximum.
# (Weights through sampled_from: one_of would merge identical branches.)
AMOUNT_KINDS = {
    "ordinary": st.integers(min_value=1, max_value=400),
    "not positive": st.integers(min_value=-2, max_value=0),
    "maximum": st.just(MAX_AMOUNT),
}
AMOUNTS = st.sampled_from(["ordinary"] * 8 + ["not positive", "maximum"]).flatmap(
    AMOUNT_KINDS.__getitem__
)
# Positions among the known users or accounts; the highest is usually past the end.
PICKS = st.integers(min_value=0, max_value=3)
KEYS = st.one_of(st.none(), st.sampled_from([f"k{n}" for n in range(1, 9)]))
OPENING = 1_000


@dataclass(frozen=True)
class Request:
    """A deposit (no source), withdrawal (no destination) or transfer, as sent."""

    source: int | None
    destination: int | None
    amount: int
    key: str | None

    @property
    def legs(self) -> tuple[int, int | None, int | None]:
        return self.amount, self.source, self.destination


@dataclass
class ModelAccount:
    currency: str
    balance: int = 0
    history: list[tuple[int, int | None, int | None, int, str | None]] = field(default_factory=list)


@dataclass
class Model:
    """The ledger as plain Python data."""

    users: dict[str, int] = field(default_factory=dict)
    accounts: dict[int, ModelAccount] = field(default_factory=dict)
    by_key: dict[str, tuple[Request, int]] = field(default_factory=dict)
    transfers: int = 0

    def judge(self, request: Request) -> type[LedgerError] | int | None:
        """The error the request must fail with, the id of the transfer it must replay, or
        None when it must create a new transfer."""
        if not 0 < request.amount <= MAX_AMOUNT:
            return InvalidAmount
        if request.source is not None and request.source == request.destination:
            return SameAccount
        if request.key is not None and request.key in self.by_key:
            earlier, transfer_id = self.by_key[request.key]
            return transfer_id if earlier.legs == request.legs else IdempotencyConflict
        ids = [i for i in (request.source, request.destination) if i is not None]
        if any(i not in self.accounts for i in ids):
            return AccountNotFound
        if len({self.accounts[i].currency for i in ids}) > 1:
            return CurrencyMismatch
        if request.source is not None and self.accounts[request.source].balance < request.amount:
            return InsufficientFunds
        if (
            request.destination is not None
            and self.accounts[request.destination].balance + request.amount > MAX_AMOUNT
        ):
            return InvalidAmount
        return None

    def apply(self, request: Request, transfer_id: int) -> None:
        entry = (transfer_id, request.source, request.destination, request.amount, request.key)
        if request.source is not None:
            self.accounts[request.source].balance -= request.amount
            self.accounts[request.source].history.insert(0, entry)
        if request.destination is not None:
            self.accounts[request.destination].balance += request.amount
            self.accounts[request.destination].history.insert(0, entry)
        if request.key is not None:
            self.by_key[request.key] = (request, transfer_id)
        self.transfers += 1


class Harness:
    """An event loop on the current thread and an engine bound to it."""

    def __init__(self, url: str) -> None:
        self.runner = asyncio.Runner()
        self.engine: AsyncEngine = create_engine(DatabaseSettings(url=url))
        self.sessions = create_session_factory(self.engine)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def outcome(self, coroutine: Coroutine[Any, Any, T]) -> T | LedgerError:
        try:
            return self.run(coroutine)
        except LedgerError as error:
            return error

    async def empty_tables(self) -> None:
        async with self.engine.begin() as connection:
            tables = list(reversed(Base.metadata.sorted_tables))
            if self.engine.dialect.name == "postgresql":
                names = ", ".join(table.name for table in tables)
                await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    await connection.execute(delete(table))

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.runner.close()


class LedgerMachine(RuleBasedStateMachine):
    """The services and the model, step by step.

    Users and accounts are picked by their position among those the model knows; a
    position past the end stands for an id that does not exist.
    """

    requests = Bundle("requests")

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.harness = harness
        self.model = Model()
        harness.run(harness.empty_tables())
        self.users_service = UserService(harness.sessions)
        self.accounts_service = AccountService(harness.sessions)
        self.transfers_service = TransferService(harness.sessions)

    def user(self, pick: int) -> int:
        ids = sorted(self.model.users.values())
        return ids[pick] if pick < len(ids) else UNKNOWN_ID

    def account(self, pick: int) -> int:
        ids = sorted(self.model.accounts)
        return ids[pick] if pick < len(ids) else UNKNOWN_ID

    @initialize()
    def two_eur_accounts_and_a_usd_one_with_money(self) -> None:
        self.register("dora@example.com")
        for currency in ("EUR", "EUR", "USD"):
            self.open(0, currency)
        for pick in range(3):
            self.send(Request(None, self.account(pick), OPENING, None))

    @rule(email=st.sampled_from(sorted(EMAILS)))
    def register(self, email: str) -> None:
        outcome = self.harness.outcome(self.users_service.register(email, "Someone"))
        stored = EMAILS.get(email, email)
        if stored is None:
            assert isinstance(outcome, InvalidEmail), outcome
        elif stored in self.model.users:
            assert isinstance(outcome, DuplicateEmail), outcome
        else:
            assert not isinstance(outcome, LedgerError), outcome
            assert outcome.email == stored
            self.model.users[stored] = outcome.id

    @rule(pick=PICKS, currency=st.sampled_from(CURRENCIES))
    def open(self, pick: int, currency: str) -> None:
        owner = self.user(pick)
        outcome = self.harness.outcome(self.accounts_service.open(owner, currency))
        if currency != currency.upper():
            assert isinstance(outcome, InvalidCurrency), outcome
        elif owner not in self.model.users.values():
            assert isinstance(outcome, UserNotFound), outcome
        else:
            assert not isinstance(outcome, LedgerError), outcome
            assert (outcome.owner_id, outcome.currency, outcome.balance) == (owner, currency, 0)
            self.model.accounts[outcome.id] = ModelAccount(currency)

    @rule(target=requests, pick=PICKS, amount=AMOUNTS, key=KEYS)
    def deposit(self, pick: int, amount: int, key: str | None) -> Request:
        return self.send(Request(None, self.account(pick), amount, key))

    @rule(target=requests, pick=PICKS, amount=AMOUNTS, key=KEYS)
    def withdraw(self, pick: int, amount: int, key: str | None) -> Request:
        return self.send(Request(self.account(pick), None, amount, key))

    @rule(target=requests, pick=PICKS, key=KEYS)
    def withdraw_everything(self, pick: int, key: str | None) -> Request:
        account = self.account(pick)
        known = self.model.accounts.get(account)
        return self.send(Request(account, None, known.balance if known else 1, key))

    @rule(target=requests, source=PICKS, destination=PICKS, amount=AMOUNTS, key=KEYS)
    def transfer(self, source: int, destination: int, amount: int, key: str | None) -> Request:
        return self.send(Request(self.account(source), self.account(destination), amount, key))

    @rule(request=requests)
    def retry_with_the_same_key(self, request: Request) -> None:
        self.send(request)

    @rule(request=requests, more=st.integers(min_value=1, max_value=50))
    def reuse_the_key_for_another_amount(self, request: Request, more: int) -> None:
        self.send(Request(request.source, request.destination, request.amount + more, request.key))

    def send(self, request: Request) -> Request:
        expected = self.model.judge(request)
        outcome = self.harness.outcome(self.call(request))
        if isinstance(expected, type):
            assert type(outcome) is expected, (request, outcome)
        else:
            assert isinstance(outcome, TransferRecord), (request, outcome)
            assert (outcome.amount, outcome.source_account_id, outcome.destination_account_id) == (
                request.legs
            )
            assert outcome.idempotency_key == request.key
            if expected is None:
                self.model.apply(request, outcome.id)
            else:
                assert outcome.id == expected, "a retry must return the original transfer"
        for account in (request.source, request.destination):
            if account in self.model.accounts:
                self.check_history(account)
        return request

    def call(self, request: Request) -> Coroutine[Any, Any, TransferRecord]:
        if request.source is None:
            assert request.destination is not None
            return self.accounts_service.deposit(
                request.destination, request.amount, idempotency_key=request.key
            )
        if request.destination is None:
            return self.accounts_service.withdraw(
                request.source, request.amount, idempotency_key=request.key
            )
        return self.transfers_service.transfer(
            request.source, request.destination, request.amount, idempotency_key=request.key
        )

    def check_history(self, account_id: int) -> None:
        """The account's whole history, read through the service."""
        page = self.harness.run(self.accounts_service.history(account_id, limit=500))
        history = [
            (t.id, t.source_account_id, t.destination_account_id, t.amount, t.idempotency_key)
            for t in page.items
        ]
        assert history == self.model.accounts[account_id].history

    @invariant()
    def balances_and_row_counts_agree(self) -> None:
        state = self.harness.run(snapshot(self.harness.sessions))
        assert state.balances == {i: a.balance for i, a in self.model.accounts.items()}
        assert (state.users, state.transfers) == (len(self.model.users), self.model.transfers)

    def teardown(self) -> None:
        for account_id, account in self.model.accounts.items():
            assert self.harness.run(self.accounts_service.balance(account_id)) == account.balance
            self.check_history(account_id)


def run_model(url: str, backend: str) -> None:
    harness = Harness(url)

    class LedgerMachineOnThisDatabase(LedgerMachine):
        def __init__(self) -> None:
            super().__init__(harness)

    try:
        run_state_machine_as_test(LedgerMachineOnThisDatabase, settings=model_settings(backend))
    finally:
        harness.close()


async def test_the_services_agree_with_an_in_memory_model_of_the_ledger(
    new_database: NewDatabase, backend: str
) -> None:
    url = await new_database()
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    await asyncio.to_thread(run_model, url, backend)
