"""The soak in its short form (same code as `make soak`), and proof that its verdict can fail."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from lab.reliability import soak as soak_module
from lab.reliability.latency import LatencyHistogram
from lab.reliability.memory import MIB, judge_memory
from lab.reliability.soak import DEFAULT_MIX, Soak, SoakConfig, schedule, soak
from tests.support.backends import sqlite_only

# By operation count, not by time: every kind of the mix runs at least EACH times however
# slow or loaded the machine (by time, the audit, 1 in 105, once never ran in 2.5 s).
EACH = 5
SHORT = SoakConfig(operations=200, each_at_least=EACH, concurrency=8, accounts=8, seed=1)


async def test_a_short_soak_loses_no_money_and_leaks_no_connection(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    report = await soak(engine, SHORT)
    assert report.ok, report.format()
    assert set(report.operations) == set(DEFAULT_MIX)
    assert min(report.operations.values()) >= EACH
    assert sum(report.operations.values()) == SHORT.operations
    assert report.errors["cancelled"] > 0
    assert report.errors["deadline expired"] > 0
    assert report.pool_after.checked_out == 0
    assert report.held_money == report.expected_money
    assert report.memory.growing is None  # too short to judge
    assert report.worker_during_load.done > 0
    assert report.outbox.drained
    assert report.outbox.jobs == report.outbox.transfers > 0
    assert "verdict: ok" in report.format()


@pytest.fixture
async def sabotage(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Operations that break the rules behind the services' back, for the soak's mix."""
    held: list[AsyncConnection] = []

    async def take_a_cent(run: Soak, rng: random.Random) -> None:
        async with run.engine.begin() as connection:
            await connection.execute(
                text("UPDATE accounts SET balance = balance - 1 WHERE id = :id"),
                {"id": rng.choice(run.account_ids)},
            )

    async def keep_a_connection(run: Soak, rng: random.Random) -> None:
        if not held:
            held.append(await run.engine.connect())

    monkeypatch.setitem(soak_module.OPERATIONS, "take a cent", take_a_cent)
    monkeypatch.setitem(soak_module.OPERATIONS, "keep a connection", keep_a_connection)
    yield
    for connection in held:
        await connection.close()


@sqlite_only
@pytest.mark.usefixtures("sessions", "sabotage")
async def test_the_verdict_fails_on_money_taken_behind_the_services_back(
    engine: AsyncEngine,
) -> None:
    mix = {"transfer": 3, "take a cent": 1}
    config = SoakConfig(operations=40, each_at_least=5, concurrency=2, accounts=3, mix=mix)
    report = await soak(engine, config)
    assert not report.ok
    assert report.held_money < report.expected_money
    assert any("money lost or made" in problem for problem in report.problems)
    assert any(problem.startswith("audit:") for problem in report.problems)


@sqlite_only
@pytest.mark.usefixtures("sessions", "sabotage")
async def test_the_verdict_fails_on_a_connection_left_checked_out(engine: AsyncEngine) -> None:
    mix = {"balance": 3, "keep a connection": 1}
    config = SoakConfig(operations=40, each_at_least=5, concurrency=2, accounts=3, mix=mix)
    report = await soak(engine, config)
    assert not report.ok
    assert any("still checked out" in problem for problem in report.problems)


def test_memory_that_rises_through_every_quarter_is_judged_growing() -> None:
    samples = [100 * MIB + n * MIB // 2 for n in range(60)]
    assert judge_memory(samples).growing is True


def test_memory_that_steps_up_once_then_stays_is_not_growing() -> None:
    samples = [100 * MIB] * 10 + [140 * MIB] * 50
    assert judge_memory(samples).growing is False


def test_memory_that_wobbles_around_a_level_is_not_growing() -> None:
    rng = random.Random(3)
    samples = [100 * MIB + rng.randint(-4 * MIB, 4 * MIB) for _ in range(200)]
    assert judge_memory(samples).growing is False


def test_a_schedule_holds_each_kind_at_least_as_often_as_asked() -> None:
    config = SoakConfig(operations=60, each_at_least=3, mix={"rare": 1, "common": 1_000})
    planned = schedule(config, random.Random(7))
    assert len(planned) == 60
    assert planned.count("rare") >= 3


def test_a_schedule_too_short_for_its_guarantee_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        schedule(SoakConfig(operations=5, each_at_least=1), random.Random(7))


def test_too_few_memory_samples_are_not_judged() -> None:
    assert judge_memory([1, 2, 3]).growing is None


def test_latency_quantiles_are_within_five_percent() -> None:
    histogram = LatencyHistogram()
    values = [n / 10_000 for n in range(1, 10_001)]  # 0.1 ms .. 1 s, evenly
    for value in values:
        histogram.record(value)
    for q in (0.5, 0.99):
        exact = values[int(q * len(values)) - 1]
        assert exact <= histogram.quantile(q) <= exact * 1.05
