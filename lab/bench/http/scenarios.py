"""The server variants and the scenarios of `bench http`: what runs, at which sizes.

A scenario names a request, the variants that serve it, the engines, and the levels it
steps through: connections, or (for the database wait) pool sizes at fixed connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from lab.bench.http.wrk import Request

Engine = Literal["sqlite", "postgresql"]


@dataclass(frozen=True, slots=True)
class Variant:
    """A server: the uvicorn factory that builds its app."""

    key: str
    label: str
    factory: str
    asynchronous: bool


VARIANTS: Final = {
    v.key: v
    for v in (
        Variant(
            "service", "async → TransferService", "lab.bench.http.async_apps:service_app", True
        ),
        Variant(
            "batcher", "async → TransferBatcher", "lab.bench.http.async_apps:batcher_app", True
        ),
        Variant("sync", "sync def → blocking driver", "lab.bench.http.sync_app:sync_app", False),
        Variant("memory", "in memory (HTTP ceiling)", "lab.bench.http.memory_app:memory_app", True),
        Variant(
            "template-async",
            "typical template, async",
            "lab.bench.http.template_async:template_async_app",
            True,
        ),
        Variant(
            "template-sync",
            "typical template, sync def",
            "lab.bench.http.template_sync:template_sync_app",
            False,
        ),
    )
}

TRANSFER: Final = Request("POST", "/transfers", transfer_body=True)
ACCOUNT: Final = Request("GET", "/accounts/{account}")
WAITS_ELSEWHERE: Final = Request("GET", "/bench/waits-elsewhere/{account}")
WAITS_IN_DB: Final = Request("GET", "/bench/waits-in-db/{account}", authenticated=False)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One table of the report.

    `levels` are connections, unless `pools` is set: then each pool size is a level (the
    async engine's pool, the sync server's threads, each with its own connection) at
    `connections` connections. `threads` widens the sync server's pool (None: 40).
    """

    name: str
    title: str
    request: Request
    variants: tuple[str, ...]
    engines: tuple[Engine, ...]
    levels: tuple[int, ...] = ()
    pools: tuple[int, ...] = ()
    connections: int = 0
    threads: int | None = None
    writes: bool = False
    overload: str = ""
    # A server left with a queue deeper than its capacity keeps working on it after wrk
    # hangs up, so each level of a waiting scenario gets a fresh server, and wrk runs
    # `slow_factor` times longer: a sync server's first answers come only once its
    # queue has gone through the thread pool (twice: FastAPI validates a def endpoint's
    # return value in the pool too).
    fresh_per_step: bool = False
    slow_factor: int = 1

    @property
    def steps(self) -> tuple[int, ...]:
        """The levels the scenario steps through (connections or pool sizes)."""
        return self.pools or self.levels

    def connections_at(self, step: int) -> int:
        """wrk's connections at one step."""
        return self.connections if self.pools else step


BOTH: Final[tuple[Engine, ...]] = ("sqlite", "postgresql")
# This project's app (one transaction per transfer, or group commit), and what it is
# measured against: the lesson's sync variant, the HTTP ceiling, the typical templates.
OURS: Final = ("service", "batcher")
OTHERS: Final = ("sync", "memory", "template-async", "template-sync")


def full() -> tuple[Scenario, ...]:
    """The issue's scenarios at their sizes."""
    return (
        Scenario(
            "transfers", "POST /transfers", TRANSFER, (*OURS, *OTHERS), BOTH,
            levels=(1, 16, 64, 256), writes=True,
        ),
        Scenario(
            "account", "GET /accounts/{id}", ACCOUNT, ("service", *OTHERS), BOTH,
            levels=(1, 16, 64),
        ),
        Scenario(
            "waits-elsewhere", "waits elsewhere: 100 ms remote call, then one row",
            WAITS_ELSEWHERE, ("batcher", "sync"), BOTH, levels=(10, 100, 400, 1000),
            fresh_per_step=True, slow_factor=2,
        ),
        Scenario(
            "memory-cost", "what concurrency costs in memory: 1,000 connections, "
            "sync thread pool raised to 1,000", WAITS_ELSEWHERE, ("batcher", "sync"),
            ("sqlite",), levels=(1000,), threads=1000, slow_factor=2,
        ),
        Scenario(
            "waits-in-db", "waits in the database: pg_sleep(0.1), then one row, 100 connections",
            WAITS_IN_DB, ("batcher", "sync"), ("postgresql",), pools=(5, 20, 50),
            connections=100, overload="pools of 5 and 20 < 100 connections: requests queue",
            slow_factor=2,
        ),
    )  # fmt: skip


def quick() -> tuple[Scenario, ...]:
    """Every scenario at one small level: does each variant answer, does the audit hold."""
    return (
        Scenario(
            "transfers", "POST /transfers", TRANSFER, (*OURS, *OTHERS), BOTH, levels=(8,),
            writes=True,
        ),
        Scenario(
            "account", "GET /accounts/{id}", ACCOUNT, ("service", *OTHERS), BOTH, levels=(4,),
        ),
        Scenario(
            "waits-elsewhere", "waits elsewhere", WAITS_ELSEWHERE,
            ("batcher", "sync"), BOTH, levels=(20,),
        ),
        Scenario(
            "waits-in-db", "waits in the database", WAITS_IN_DB,
            ("batcher", "sync"), ("postgresql",), pools=(5,), connections=10,
        ),
    )  # fmt: skip
