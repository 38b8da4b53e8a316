"""Huge ints and huge timeouts: a typed InvalidInput, never ValueError or OverflowError.

repr() of an int past 4,300 digits raises ValueError, so an error message that quoted
the refused value failed with an untyped error; an int timeout too large for a float made
asyncio.timeout() raise OverflowError. Each case must also leave the ledger untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import (
    AccountService,
    DashboardService,
    JobQueue,
    TransferBatcher,
    TransferService,
)
from services.errors import InvalidAmount, InvalidCurrency, InvalidId, InvalidInput
from tests.support.ledger import open_account, snapshot

HUGE = 10**5000  # past sys.get_int_max_str_digits() (4,300 by default)
TOO_LONG_FOR_A_FLOAT = 10**400

Sessions = async_sessionmaker[AsyncSession]


async def _refused_without_change(
    sessions: Sessions, error: type[InvalidInput], call: Callable[[], Awaitable[object]]
) -> InvalidInput:
    before = await snapshot(sessions)
    with pytest.raises(error) as refused:
        await call()
    assert await snapshot(sessions) == before
    return refused.value


async def test_a_huge_account_id_is_an_invalid_id(sessions: Sessions) -> None:
    error = await _refused_without_change(
        sessions, InvalidId, lambda: AccountService(sessions).balance(HUGE)
    )
    assert "int of" in str(error)


@pytest.mark.parametrize("amount", [HUGE, -HUGE], ids=["huge", "negative huge"])
async def test_a_huge_amount_is_an_invalid_amount(sessions: Sessions, amount: int) -> None:
    account = await open_account(sessions)
    await _refused_without_change(
        sessions, InvalidAmount, lambda: AccountService(sessions).deposit(account.id, amount)
    )


async def test_a_huge_int_as_currency_is_an_invalid_currency(sessions: Sessions) -> None:
    owner = (await open_account(sessions)).owner_id
    await _refused_without_change(
        sessions,
        InvalidCurrency,
        lambda: AccountService(sessions).open(owner, HUGE),  # type: ignore[arg-type]
    )


async def test_a_huge_page_limit_is_invalid_input(sessions: Sessions) -> None:
    account = await open_account(sessions)
    await _refused_without_change(
        sessions, InvalidInput, lambda: AccountService(sessions).history(account.id, limit=HUGE)
    )


async def test_a_huge_dashboard_length_is_invalid_input(sessions: Sessions) -> None:
    owner = (await open_account(sessions)).owner_id
    await _refused_without_change(
        sessions, InvalidInput, lambda: DashboardService(sessions).for_user(owner, recent=HUGE)
    )


@pytest.mark.parametrize(
    "timeout", [TOO_LONG_FOR_A_FLOAT, -HUGE, float("inf")], ids=["huge", "negative huge", "inf"]
)
async def test_a_huge_transfer_timeout_is_invalid_input(
    sessions: Sessions,
    timeout: float,  # noqa: ASYNC109 (the value under test, not this test's deadline)
) -> None:
    source, destination = await open_account(sessions, 100), await open_account(sessions)
    await _refused_without_change(
        sessions,
        InvalidInput,
        lambda: TransferService(sessions).transfer(source.id, destination.id, 1, timeout=timeout),
    )


async def test_a_huge_batcher_timeout_is_invalid_input(sessions: Sessions) -> None:
    source, destination = await open_account(sessions, 100), await open_account(sessions)
    async with TransferBatcher(sessions) as batcher:
        await _refused_without_change(
            sessions,
            InvalidInput,
            lambda: batcher.transfer(source.id, destination.id, 1, timeout=TOO_LONG_FOR_A_FLOAT),
        )


# A huge int must be shown shortened in the message, not quoted whole with !r.
@pytest.mark.parametrize(
    "claim",
    [
        lambda queue: queue.claim("w", limit=HUGE, lease_seconds=30),
        lambda queue: queue.claim("w", limit=1, lease_seconds=HUGE),
        lambda queue: queue.enqueue("mail.send", {}, max_attempts=-HUGE),
    ],
    ids=["claim limit", "lease seconds", "max attempts"],
)
async def test_a_huge_job_queue_bound_is_invalid_input(
    sessions: Sessions, claim: Callable[[JobQueue], Awaitable[object]]
) -> None:
    error = await _refused_without_change(sessions, InvalidInput, lambda: claim(JobQueue(sessions)))
    assert "int of" in str(error)
