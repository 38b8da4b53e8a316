"""Fuzzing every public service method, TransferBatcher.transfer and ledgerctl with junk.

Every argument gets either a valid value (ids of a seeded ledger, small amounts) or an
arbitrary Python value (tests/support/junk.py). The properties: a call succeeds or raises
a LedgerError, never anything else; a refusal changes nothing (balances, row counts,
jobs); the audit is clean at the end. Through ledgerctl: exit status 0, 1 or 2, no
traceback, and a failed command changes nothing. OperationTimeout is a refusal whose
COMMIT may already have taken effect, so only the audit judges it.

Hypothesis calls synchronously, so the run has a thread, an event loop and an engine of
its own (as in test_model.py). Sizes per engine keep the file to ~19 s for both;
FUZZ_EXAMPLES=200 searches deeper by hand.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db import DatabaseSettings, create_engine, create_session_factory, migrations
from models import ApiToken, Job
from services import (
    SYSTEM,
    AccessService,
    AccountService,
    BackOffice,
    DashboardService,
    JobQueue,
    LedgerAuditor,
    Role,
    TransferBatcher,
    TransferRequest,
    TransferService,
    UserService,
    validation,
)
from services.errors import LedgerError, OperationTimeout
from tests.support.backends import NewDatabase
from tests.support.cli_runs import ledgerctl_blocking
from tests.support.junk import ODD_TEXT, SubInt, huge_ints, junk
from tests.support.ledger import Snapshot, snapshot

T = TypeVar("T")

EXAMPLES = {"sqlite": 25, "postgresql": 10}
CLI_EXAMPLES = {"sqlite": 60, "postgresql": 25}
HUGE_EXAMPLES = {"sqlite": 4, "postgresql": 2}  # per argument of each method


def fuzz_settings(examples: int) -> settings:
    deeper = os.environ.get("FUZZ_EXAMPLES")
    return settings(
        max_examples=int(deeper) if deeper else examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@dataclass(frozen=True)
class Ledger:
    """The seeded ledger's ids: Ada's EUR account holds 1,000, `empty` nothing, USD 500;
    `token` is a live API token of a third user."""

    ada: int
    bob: int
    eur: int
    empty: int
    usd: int
    token: str


@dataclass(frozen=True)
class State:
    ledger: Snapshot
    jobs: int
    live_tokens: int


Call = Callable[..., Awaitable[object]]


@dataclass(frozen=True)
class Target:
    name: str
    call: Callable[[Any, Ledger], Call]
    arguments: Callable[[Ledger], list[st.SearchStrategy[Any]]]


def either(*valid: Any) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(valid), junk)


def ids(ledger: Ledger) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([ledger.ada, ledger.bob, ledger.eur, ledger.empty, ledger.usd]),
        st.sampled_from([ledger.eur, ledger.usd]).map(SubInt),
        junk,
    )


amounts = st.one_of(st.integers(min_value=1, max_value=2_000), junk)
keys = st.one_of(st.none(), st.text(min_size=1, max_size=12), junk)
texts = st.one_of(st.none(), st.sampled_from(["rent", "Ünïcødé"]), junk)
timeouts = st.one_of(st.sampled_from([None, 30, 30.0]), junk)
roles = st.one_of(st.sampled_from(list(Role)), st.sampled_from(["user", "operator"]), junk)


def requests(ledger: Ledger) -> st.SearchStrategy[Any]:
    pairs = [(ledger.eur, ledger.empty), (None, ledger.usd), (ledger.empty, ledger.eur)]
    built = st.builds(
        lambda pair, amount: TransferRequest.of(pair[0], pair[1], amount),
        st.sampled_from(pairs),
        st.integers(min_value=1, max_value=2_000),
    )
    # The dataclass itself, bypassing of()'s checks: a public constructor too.
    raw = st.builds(TransferRequest, junk, junk, junk, junk, junk)
    return st.one_of(st.lists(st.one_of(built, raw, junk), max_size=3), junk)


TARGETS = [
    Target(
        "UserService.register",
        lambda h, _: h.users.register,
        lambda _: [either("new@example.com", "ADA@example.com"), either("Ann")],
    ),
    Target("UserService.get", lambda h, _: h.users.get, lambda led: [ids(led)]),
    Target(
        "AccountService.open",
        lambda h, _: h.accounts.open,
        lambda led: [ids(led), either("EUR", "USD", "JPY")],
    ),
    Target("AccountService.get", lambda h, _: h.accounts.get, lambda led: [ids(led)]),
    Target("AccountService.for_owner", lambda h, _: h.accounts.for_owner, lambda led: [ids(led)]),
    Target("AccountService.balance", lambda h, _: h.accounts.balance, lambda led: [ids(led)]),
    Target(
        "AccountService.deposit",
        lambda h, _: h.accounts.deposit,
        lambda led: [ids(led), amounts, keys, texts],
    ),
    Target(
        "AccountService.withdraw",
        lambda h, _: h.accounts.withdraw,
        lambda led: [ids(led), amounts, keys, texts],
    ),
    Target(
        "AccountService.history",
        lambda h, _: h.accounts.history,
        lambda led: [ids(led), either(1, 50, 500), st.one_of(st.none(), ids(led))],
    ),
    Target(
        "TransferService.transfer",
        lambda h, _: (
            lambda s, d, a, k, t, timeout: h.transfers.transfer(
                s, d, a, idempotency_key=k, description=t, timeout=timeout
            )
        ),
        lambda led: [ids(led), ids(led), amounts, keys, texts, timeouts],
    ),
    Target(
        "TransferService.transfer_many",
        lambda h, _: lambda r, timeout: h.transfers.transfer_many(r, timeout=timeout),
        lambda led: [requests(led), timeouts],
    ),
    Target(
        "TransferRequest.of",
        lambda _, __: (
            lambda s, d, a, k, t: _awaitable(
                lambda: TransferRequest.of(s, d, a, idempotency_key=k, description=t)
            )
        ),
        lambda led: [ids(led), ids(led), amounts, keys, texts],
    ),
    Target(
        "TransferBatcher.transfer",
        lambda h, _: (
            lambda s, d, a, k, t, timeout: h.batcher.transfer(
                s, d, a, idempotency_key=k, description=t, timeout=timeout
            )
        ),
        lambda led: [ids(led), ids(led), amounts, keys, texts, timeouts],
    ),
    Target(
        "DashboardService.for_user",
        lambda h, _: (
            lambda u, recent, timeout: h.dashboard.for_user(u, recent=recent, timeout=timeout)
        ),
        lambda led: [ids(led), either(1, 10, 100), timeouts],
    ),
    Target(
        "DashboardService.account_owners",
        lambda h, _: h.dashboard.account_owners,
        lambda led: [st.one_of(st.lists(ids(led), max_size=3), junk)],
    ),
    Target(
        "AccessService.register",
        lambda h, _: (
            lambda e, n, role, timeout: h.access.register(e, n, role=role, timeout=timeout)
        ),
        lambda _: [either("new@example.com", "ADA@example.com"), either("Ann"), roles, timeouts],
    ),
    Target(
        # The trusted in-process caller may create operators: its role is not refused
        # for who asks, so a junk role reaches further.
        "AccessService(SYSTEM).register",
        lambda h, _: (
            lambda e, n, role, timeout: h.system_access.register(e, n, role=role, timeout=timeout)
        ),
        lambda _: [either("op@example.com"), either("Op"), roles, timeouts],
    ),
    Target(
        "AccessService.authenticate",
        lambda h, _: lambda token, timeout: h.access.authenticate(token, timeout=timeout),
        lambda led: [either(led.token, "", "x" * 5000), timeouts],
    ),
    Target(
        "AccessService.revoke",
        lambda h, _: lambda token, timeout: h.access.revoke(token, timeout=timeout),
        lambda led: [either(led.token), timeouts],
    ),
    Target(
        "BackOffice.audit",
        lambda h, _: lambda timeout: h.back_office.audit(timeout=timeout),
        lambda _: [timeouts],
    ),
    Target(
        "BackOffice.job_stats",
        lambda h, _: lambda timeout: h.back_office.job_stats(timeout=timeout),
        lambda _: [timeouts],
    ),
    Target(
        "JobQueue.enqueue",
        lambda h, _: (
            lambda kind, payload, attempts: h.jobs.enqueue(kind, payload, max_attempts=attempts)
        ),
        lambda _: [either("fuzz.job"), either({"n": 1}, {}), either(1, 5)],
    ),
    Target(
        "JobQueue.claim",
        lambda h, _: (
            lambda worker, limit, lease: h.jobs.claim(worker, limit=limit, lease_seconds=lease)
        ),
        lambda _: [either("fuzzer"), either(1, 10), either(0.5, 30.0)],
    ),
    Target("JobQueue.get", lambda h, _: h.jobs.get, lambda led: [ids(led)]),
    Target(
        "JobQueue.dead",
        lambda h, _: lambda limit: h.jobs.dead(limit=limit),
        lambda _: [either(1, 10)],
    ),
]


async def _awaitable(make: Callable[[], T]) -> T:
    return make()


class Harness:
    """An event loop on this thread, an engine bound to it, and the services."""

    def __init__(self, url: str) -> None:
        self.runner = asyncio.Runner()
        self.engine = create_engine(DatabaseSettings(url=url))
        self.sessions = create_session_factory(self.engine)
        self.users = UserService(self.sessions)
        self.accounts = AccountService(self.sessions)
        self.transfers = TransferService(self.sessions)
        self.dashboard = DashboardService(self.sessions)
        self.jobs = JobQueue(self.sessions)
        self.batcher = TransferBatcher(self.sessions)
        self.access = AccessService(self.sessions)
        self.system_access = AccessService(self.sessions, caller=SYSTEM)
        self.back_office = BackOffice(self.sessions)
        self.ledger = self.run(self.seed())
        self.current = self.run(self.state())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    async def seed(self) -> Ledger:
        ada = await self.users.register("ada@example.com", "Ada")
        bob = await self.users.register("bob@example.com", "Bob")
        eur = await self.accounts.open(ada.id, "EUR")
        await self.accounts.deposit(eur.id, 1_000, idempotency_key="seed")
        empty = await self.accounts.open(bob.id, "EUR")
        usd = await self.accounts.open(bob.id, "USD")
        await self.accounts.deposit(usd.id, 500)
        token = (await self.access.register("cy@example.com", "Cy")).token
        self.batcher.start()
        return Ledger(ada.id, bob.id, eur.id, empty.id, usd.id, token)

    async def state(self) -> State:
        async with self.sessions() as session:
            jobs = int(await session.scalar(select(func.count()).select_from(Job)) or 0)
            live = select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None))
            tokens = int(await session.scalar(live) or 0)
        return State(await snapshot(self.sessions), jobs, tokens)

    def check(
        self, name: str, call: Call, args: tuple[Any, ...], *, must_refuse: bool = False
    ) -> None:
        """Call; a refusal must be a LedgerError and leave the state as it was."""
        refusal: LedgerError | None = None
        try:
            self.run(_call(call, args))
            assert not must_refuse, f"{name}({_shown(args)}) was accepted"
        except OperationTimeout:
            pass  # its COMMIT may have been sent: only the final audit judges it
        except LedgerError as error:
            refusal = error
        except Exception as error:
            raise AssertionError(
                f"{name}({_shown(args)}) raised {type(error).__name__}, not a LedgerError: {error}"
            ) from error
        after = self.run(self.state())
        wrote = f"{name}({_shown(args)}) refused ({refusal!r}) but wrote"
        assert refusal is None or after == self.current, wrote
        self.current = after

    def close(self) -> None:
        self.run(self.batcher.close())
        self.run(self.engine.dispose())
        self.runner.close()


def _shown(args: tuple[Any, ...]) -> str:
    # repr() of an int past 4,300 digits raises: quote the arguments the way errors do.
    return ", ".join(validation.shown(arg) for arg in args)


async def _call(call: Call, args: tuple[Any, ...]) -> object:
    return await call(*args)


def fuzz_target(harness: Harness, target: Target, examples: int) -> None:
    call = target.call(harness, harness.ledger)

    @fuzz_settings(examples)
    @given(args=st.tuples(*target.arguments(harness.ledger)))
    def check(args: tuple[Any, ...]) -> None:
        harness.check(target.name, call, args)

    check()


def fuzz_huge_ints(harness: Harness, target: Target, examples: int) -> None:
    """Each argument in turn gets an int past float range or past 4,300 digits, the
    OverflowError and ValueError of issue 10, sent on purpose rather than left to chance."""
    call = target.call(harness, harness.ledger)
    arguments = target.arguments(harness.ledger)
    for position in range(len(arguments)):
        vector = [*arguments[:position], huge_ints, *arguments[position + 1 :]]

        @fuzz_settings(examples)
        @given(args=st.tuples(*vector))
        def check(args: tuple[Any, ...]) -> None:
            harness.check(target.name, call, args, must_refuse=True)

        check()


def fuzz_services(url: str, backend: str) -> None:
    harness = Harness(url)
    try:
        for target in TARGETS:
            fuzz_target(harness, target, EXAMPLES[backend])
            fuzz_huge_ints(harness, target, HUGE_EXAMPLES[backend])
        report = harness.run(LedgerAuditor(harness.sessions).verify())
        assert report.ok, report.problems
    finally:
        harness.close()


async def _migrated(new_database: NewDatabase) -> str:
    url = await new_database()
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    return url


async def test_junk_into_every_service_method_is_a_ledger_error_and_writes_nothing(
    new_database: NewDatabase, backend: str
) -> None:
    url = await _migrated(new_database)
    await asyncio.to_thread(fuzz_services, url, backend)


# --- ledgerctl -------------------------------------------------------------------------

word = st.one_of(
    st.sampled_from(["1", "2", "3", "100", "0", "-1", "EUR", "USD", "a@b.cd", "Ann"]),
    # Past float range, and past the 4,300 digits int() reads.
    st.sampled_from(["1" + "0" * 400, "9" * 4_301, "-" + "9" * 5_000]),
    st.sampled_from(ODD_TEXT).filter(lambda t: "\x00" not in t),
    st.text(max_size=12).filter(lambda t: "\x00" not in t),  # a command line has no NUL
)
COMMANDS: dict[tuple[str, ...], tuple[int, list[str]]] = {
    # command words: (positional arguments, options that take a value)
    ("user", "add"): (2, []),
    ("account", "open"): (2, []),
    ("deposit",): (2, ["--key", "--description"]),
    ("withdraw",): (2, ["--key", "--description"]),
    ("transfer",): (3, ["--key", "--description"]),
    ("balance",): (1, []),
    ("history",): (1, ["--limit", "--before"]),
    ("audit",): (0, []),
    ("jobs",): (0, ["--dead"]),
    ("dashboard",): (1, ["--recent"]),
}


@st.composite
def argv(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    positional, options = COMMANDS[command]
    count = draw(st.sampled_from([positional, positional, positional + 1, max(positional - 1, 0)]))
    args = [*command, *(draw(word) for _ in range(count))]
    for option in draw(st.lists(st.sampled_from([*options, "--json", "--nope"]), max_size=2)):
        args.append(option)
        if option in options:
            args.append(draw(word))
    return args


def fuzz_cli(url: str, backend: str) -> None:
    harness = Harness(url)
    try:

        @fuzz_settings(CLI_EXAMPLES[backend])
        @given(args=argv())
        def check(args: list[str]) -> None:
            run = ledgerctl_blocking(*args)
            assert run.code in (0, 1, 2), (args, run)
            assert "Traceback" not in run.stderr, (args, run.stderr)
            after = harness.run(harness.state())
            if run.code != 0:
                assert after == harness.current, (args, run)
            harness.current = after

        check()
        report = harness.run(LedgerAuditor(harness.sessions).verify())
        assert report.ok, report.problems
    finally:
        harness.close()


async def test_junk_command_lines_exit_0_1_or_2_without_a_traceback(
    new_database: NewDatabase, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await _migrated(new_database)
    monkeypatch.setenv("DATABASE_URL", url)
    await asyncio.to_thread(fuzz_cli, url, backend)
