"""Every public method of every service, called by an unrelated user, is refused or
answers with that user's own data only.

The methods are found from `services.__all__`, so a new service or method is covered
without editing this file: a new parameter name needs a line in ARGUMENTS (how to point
it at the victim's data), and a new service built without a caller must say why in
TRUSTED_ONLY.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import services
from services import (
    AccessService,
    AccountRecord,
    Caller,
    Counterparty,
    TransferRecord,
    TransferRequest,
    TransferService,
    UserRecord,
)
from services.errors import InvalidToken, NotAllowed, NotFound
from tests.support.ledger import open_account, snapshot
from tests.support.pgbouncer import through_pgbouncer

pytestmark = through_pgbouncer

Sessions = async_sessionmaker[AsyncSession]

# Built without a caller: code of this process only, never reachable by a user (the API
# and the CLI hand a user nothing of these). Each says why.
TRUSTED_ONLY = {
    "JobQueue": "the job queue's own bookkeeping; handlers and workers are in-process code",
    "LedgerAuditor": "the audit a user reaches only through BackOffice.audit (operators)",
    "OutboxAuditor": "an operator's check of the outbox, run by tests and the soak only",
    "Worker": "runs in-process job handlers; it has no caller and returns counts only",
    "OutboxRelay": "moves committed outbox rows to the broker; in-process, it has no caller",
    "EventOutbox": "the outbox's operator view (ledgerctl outbox, /metrics counts only)",
    "EventConsumer": "applies broker messages to the consumer's database; no caller sends them",
    "StatementService": (
        "the example consumer's read model, read by its operator and tests; nothing hands it "
        "to a user (a consumer that shows it to users checks its own callers)"
    ),
}
# Methods of caller-bound services that act for nobody (lifecycle, not data).
LIFECYCLE = {("TransferBatcher", "start"), ("TransferBatcher", "close")}

# The answers that are refusals.
REFUSALS = (NotAllowed, NotFound, InvalidToken)

_emails = itertools.count(1)


def _is_service(cls: type) -> bool:
    parameters = inspect.signature(cls).parameters
    return "sessions" in parameters or "queue" in parameters


def _caller_of_construction(cls: type) -> bool:
    return "caller" in inspect.signature(cls).parameters


def _service_classes() -> list[type]:
    exported = (getattr(services, name) for name in services.__all__)
    return [
        obj
        for obj in exported
        if inspect.isclass(obj) and not issubclass(obj, BaseException) and _is_service(obj)
    ]


def _public_methods(cls: type) -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    )


def _guarded_methods() -> list[tuple[str, str]]:
    found = []
    for cls in _service_classes():
        if cls.__name__ in TRUSTED_ONLY:
            continue
        for method in _public_methods(cls):
            if (cls.__name__, method) not in LIFECYCLE:
                found.append((cls.__name__, method))
    return found


GUARDED = _guarded_methods()


def test_every_service_either_acts_for_a_caller_or_says_why_it_is_trusted() -> None:
    undecided = [
        cls.__name__
        for cls in _service_classes()
        if cls.__name__ not in TRUSTED_ONLY
        and not _caller_of_construction(cls)
        and not any(
            "caller" in inspect.signature(getattr(cls, m)).parameters for m in _public_methods(cls)
        )
    ]
    assert undecided == []
    assert len(GUARDED) >= 15  # the discovery sees the services at all


@dataclass(frozen=True)
class World:
    """The victim's data, and the unrelated user who reaches for it."""

    victim_user: int
    victim_accounts: frozenset[int]
    victim_transfers: frozenset[int]
    victim_strings: frozenset[str]
    stranger: Caller
    stranger_account: int


@pytest.fixture
async def world(sessions: Sessions) -> World:
    victim_email = f"victim-{next(_emails)}@example.com"
    made = await AccessService(sessions, caller=services.SYSTEM).register(
        victim_email, "Victim Vera"
    )
    victim = made.user
    accounts = services.AccountService(sessions)
    first = await accounts.open(victim.id, "EUR")
    second = await accounts.open(victim.id, "EUR")
    await accounts.deposit(first.id, 1_000)
    third_party = await open_account(sessions)
    money = TransferService(sessions)
    moved = [
        await money.transfer(first.id, second.id, 10),
        await money.transfer(first.id, third_party.id, 20),
    ]
    stranger = await open_account(sessions, balance=500)
    history = await accounts.history(first.id, limit=100)
    return World(
        victim_user=victim.id,
        victim_accounts=frozenset({first.id, second.id}),
        victim_transfers=frozenset({t.id for t in [*moved, *history.items]}),
        victim_strings=frozenset({victim_email, "Victim Vera", made.token}),
        stranger=Caller.user(stranger.owner_id),
        stranger_account=stranger.id,
    )


# How each parameter points at the victim's data (or, for the other end of a movement,
# at the stranger's own account). Optional parameters keep their defaults.
ARGUMENTS: dict[str, Callable[[World], Any]] = {
    "account_id": lambda w: min(w.victim_accounts),
    "account_ids": lambda w: sorted(w.victim_accounts),
    "owner_id": lambda w: w.victim_user,
    "user_id": lambda w: w.victim_user,
    "source_id": lambda w: min(w.victim_accounts),
    "destination_id": lambda w: w.stranger_account,
    "amount": lambda w: 1,
    "currency": lambda w: "EUR",
    "email": lambda w: f"other-{next(_emails)}@example.com",
    "name": lambda w: "Someone Else",
    # A well-formed token the stranger does not hold (a token is itself the credential).
    "token": lambda w: "x" * 43,
    "requests": lambda w: [TransferRequest.of(min(w.victim_accounts), w.stranger_account, 1)],
    "caller": lambda w: w.stranger,
}


def _arguments(method: Callable[..., Any], world: World) -> dict[str, Any]:
    chosen = {}
    for name, parameter in inspect.signature(method).parameters.items():
        if name == "self" or (parameter.default is not parameter.empty and name != "caller"):
            continue
        assert name in ARGUMENTS, f"add to ARGUMENTS how {name!r} points at another's data"
        chosen[name] = ARGUMENTS[name](world)
    return chosen


async def _answer(result: Any) -> Any:
    """What a call answered, whatever its shape: awaited, entered, iterated."""
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, AbstractAsyncContextManager):
        async with result as inside:
            return await _answer(inside)
    if isinstance(result, AsyncIterator):
        return [item async for item in result]
    return result


def _leaks(value: Any, world: World) -> list[str]:
    """Where `value` shows the victim's data."""
    found: list[str] = []

    def visit(item: Any, where: str) -> None:
        if isinstance(item, str):
            found.extend(f"{where}: {item!r}" for s in world.victim_strings if s in item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            record = type(item).__name__
            for field in dataclasses.fields(item):
                visit(getattr(item, field.name), f"{where}.{record}.{field.name}")
            if isinstance(item, UserRecord) and item.id == world.victim_user:
                found.append(f"{where}: the victim's user")
            if isinstance(item, AccountRecord | Counterparty):
                account = item.id if isinstance(item, AccountRecord) else item.account_id
                if account in world.victim_accounts:
                    found.append(f"{where}: the victim's account {account}")
            if isinstance(item, TransferRecord) and item.id in world.victim_transfers:
                found.append(f"{where}: the victim's transfer {item.id}")
            if getattr(item, "owner_id", None) == world.victim_user:
                found.append(f"{where}: owned by the victim")
        elif isinstance(item, dict):
            for key, inner in item.items():
                visit(key, f"{where}[key]")
                visit(inner, f"{where}[{key!r}]")
        elif isinstance(item, list | tuple | set | frozenset):
            for n, inner in enumerate(item):
                visit(inner, f"{where}[{n}]")

    visit(value, "answer")
    return found


async def _call(cls_name: str, method: str, sessions: Sessions, world: World) -> Any:
    cls = getattr(services, cls_name)
    if _caller_of_construction(cls):
        return await _answer(
            getattr(cls(sessions, caller=world.stranger), method)(
                **_arguments(getattr(cls, method), world)
            )
        )
    async with cls(sessions) as service:  # a service that takes its caller per call
        return await _answer(getattr(service, method)(**_arguments(getattr(cls, method), world)))


@pytest.mark.parametrize(("service", "method"), GUARDED, ids=[f"{s}.{m}" for s, m in GUARDED])
async def test_an_unrelated_user_is_refused_or_sees_only_their_own(
    sessions: Sessions, world: World, service: str, method: str
) -> None:
    before = await snapshot(sessions)
    try:
        answer = await _call(service, method, sessions, world)
    except REFUSALS:
        assert await snapshot(sessions) == before, "a refusal changed the ledger"
        return
    assert _leaks(answer, world) == []
    assert (await snapshot(sessions)).balances == before.balances, "money moved"
