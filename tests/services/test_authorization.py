"""Authorization lives in the services: a user touches only their own money and data."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import (
    ANONYMOUS,
    AccountService,
    BackOffice,
    Caller,
    DashboardService,
    TransferBatcher,
    TransferRequest,
    TransferService,
    UserService,
)
from services.errors import AccountNotFound, NotAllowed, UserNotFound
from tests.support.ledger import open_account, snapshot


async def test_a_user_transfers_out_of_their_own_account(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions, balance=100)
    theirs = await open_account(sessions)
    record = await TransferService(sessions, caller=Caller.user(mine.owner_id)).transfer(
        mine.id, theirs.id, 40
    )
    assert (record.source_account_id, record.amount) == (mine.id, 40)


async def test_a_transfer_out_of_someone_elses_account_reads_as_a_missing_account(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions)
    theirs = await open_account(sessions, balance=100)
    before = await snapshot(sessions)
    as_me = Caller.user(mine.owner_id)
    with pytest.raises(AccountNotFound) as stolen:
        await TransferService(sessions, caller=as_me).transfer(theirs.id, mine.id, 40)
    with pytest.raises(AccountNotFound) as missing:
        await TransferService(sessions, caller=as_me).transfer(10_000, mine.id, 40)
    assert str(stolen.value).replace(str(theirs.id), "N") == str(missing.value).replace(
        "10000", "N"
    )
    assert await snapshot(sessions) == before


async def test_the_source_is_judged_before_the_destination(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions)
    theirs = await open_account(sessions, balance=100)
    # Naming a missing destination must not tell the caller that `theirs` exists.
    with pytest.raises(AccountNotFound) as refused:
        await TransferService(sessions, caller=Caller.user(mine.owner_id)).transfer(
            theirs.id, 10_000, 40
        )
    assert refused.value.account_id == theirs.id


async def test_a_batched_transfer_is_held_to_the_same_rule(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions, balance=100)
    theirs = await open_account(sessions, balance=100)
    async with TransferBatcher(sessions) as batcher:
        with pytest.raises(AccountNotFound):
            await batcher.transfer(theirs.id, mine.id, 5, caller=Caller.user(mine.owner_id))
        ok = await batcher.transfer(mine.id, theirs.id, 5, caller=Caller.user(mine.owner_id))
    assert ok.amount == 5


async def test_transfer_many_is_held_to_the_same_rule(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions, balance=100)
    theirs = await open_account(sessions, balance=100)
    outcomes = await TransferService(sessions, caller=Caller.user(mine.owner_id)).transfer_many(
        [TransferRequest.of(theirs.id, mine.id, 5), TransferRequest.of(mine.id, theirs.id, 5)]
    )
    assert isinstance(outcomes[0], AccountNotFound)
    assert not isinstance(outcomes[1], Exception)


async def test_a_user_withdraws_only_from_their_own_account(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions, balance=100)
    theirs = await open_account(sessions, balance=100)
    accounts = AccountService(sessions, caller=Caller.user(mine.owner_id))
    assert (await accounts.withdraw(mine.id, 10)).amount == 10
    before = await snapshot(sessions)
    with pytest.raises(AccountNotFound):
        await accounts.withdraw(theirs.id, 10)
    assert await snapshot(sessions) == before


@pytest.mark.parametrize("who", ["user", "anonymous"])
async def test_only_an_operator_deposits(
    sessions: async_sessionmaker[AsyncSession], who: str
) -> None:
    mine = await open_account(sessions)
    caller = Caller.user(mine.owner_id) if who == "user" else ANONYMOUS
    before = await snapshot(sessions)
    with pytest.raises(NotAllowed):
        await AccountService(sessions, caller=caller).deposit(mine.id, 10)
    assert await snapshot(sessions) == before


async def test_an_operator_deposits_into_any_account_but_moves_only_its_own_money(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    operator_account = await open_account(sessions, balance=50)
    theirs = await open_account(sessions, balance=100)
    operator = AccountService(sessions, caller=Caller.operator(operator_account.owner_id))
    assert (await operator.deposit(theirs.id, 10)).destination_account_id == theirs.id
    with pytest.raises(AccountNotFound):
        await operator.withdraw(theirs.id, 10)
    assert (await operator.get(theirs.id)).balance == 110


async def test_a_user_reads_only_their_own_accounts_and_history(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions, balance=5)
    theirs = await open_account(sessions, balance=5)
    accounts = AccountService(sessions, caller=Caller.user(mine.owner_id))
    assert (await accounts.get(mine.id)).id == mine.id
    assert len((await accounts.history(mine.id)).items) == 1
    assert [a.id for a in await accounts.for_owner(mine.owner_id)] == [mine.id]
    with pytest.raises(AccountNotFound):
        await accounts.get(theirs.id)
    with pytest.raises(AccountNotFound):
        await accounts.history(theirs.id)
    with pytest.raises(UserNotFound):
        await accounts.for_owner(theirs.owner_id)


async def test_a_user_opens_accounts_only_for_themselves(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions)
    theirs = await open_account(sessions)
    accounts = AccountService(sessions, caller=Caller.user(mine.owner_id))
    assert (await accounts.open(mine.owner_id, "USD")).owner_id == mine.owner_id
    before = await snapshot(sessions)
    with pytest.raises(UserNotFound):
        await accounts.open(theirs.owner_id, "USD")
    assert await snapshot(sessions) == before


async def test_a_user_reads_only_their_own_user_and_dashboard(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions)
    theirs = await open_account(sessions)
    me = Caller.user(mine.owner_id)
    assert (await UserService(sessions, caller=me).get(mine.owner_id)).id == mine.owner_id
    assert (await DashboardService(sessions, caller=me).for_user(mine.owner_id)).accounts
    with pytest.raises(UserNotFound):
        await UserService(sessions, caller=me).get(theirs.owner_id)
    with pytest.raises(UserNotFound):
        await DashboardService(sessions, caller=me).for_user(theirs.owner_id)


async def test_the_audit_and_job_stats_are_for_operators(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions, balance=5)
    as_user = BackOffice(sessions, caller=Caller.user(mine.owner_id))
    with pytest.raises(NotAllowed):
        await as_user.audit()
    with pytest.raises(NotAllowed):
        await as_user.job_stats()
    as_operator = BackOffice(sessions, caller=Caller.operator(mine.owner_id))
    assert (await as_operator.audit()).ok
    assert (await as_operator.job_stats()).total == 1  # the deposit's outbox job


async def test_the_anonymous_caller_reads_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await open_account(sessions)
    with pytest.raises(NotAllowed):
        await AccountService(sessions, caller=ANONYMOUS).get(mine.id)
    with pytest.raises(NotAllowed):
        await TransferService(sessions, caller=ANONYMOUS).transfer(mine.id, mine.id + 1, 1)
