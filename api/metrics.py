"""Prometheus metrics of one app: requests, the connection pool and the batcher.

Each app has its own CollectorRegistry (not the process-global one), so several apps in
one process (tests) never share counters. With N workers, each process answers /metrics
for itself; scrape each, or aggregate in Prometheus. Tokens never appear in a label:
the route label is the path template (`/accounts/{account_id}`), never the raw path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from db import pool_status
from services.results import RelayStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _PoolCollector(Collector):
    """Reads the pool when scraped, so the figures are current, not sampled."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = pool_status(self._engine)
        for name, value, text in (
            ("ledger_db_pool_size", status.size, "connections the pool keeps"),
            ("ledger_db_pool_checked_out", status.checked_out, "connections lent out now"),
            ("ledger_db_pool_idle", status.checked_in, "connections idle in the pool now"),
            ("ledger_db_pool_overflow", status.overflow, "connections beyond pool_size now"),
        ):
            yield GaugeMetricFamily(name, text, value=value)


class _RelayCollector(Collector):
    """The in-process relay's counts, read when scraped."""

    def __init__(self, stats: Callable[[], RelayStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats()
        for name, value, text in (
            ("ledger_relay_published", stats.published, "events the broker confirmed"),
            ("ledger_relay_failed", stats.failed, "events marked failed: cannot be encoded"),
            ("ledger_relay_reconnects", stats.reconnects, "broker connections made again"),
        ):
            yield CounterMetricFamily(name, text, value=value)
        yield GaugeMetricFamily(
            "ledger_relay_leader", "1 while this process's relay publishes", value=stats.leader
        )
        yield GaugeMetricFamily(
            "ledger_relay_connected", "1 while connected to the broker", value=stats.connected
        )


class ApiMetrics:
    """The metrics of one app."""

    def __init__(self, engine: AsyncEngine, max_overflow: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ledger_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ledger_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "ledger_batcher_batch_size",
            "Transfers committed together by the group-commit batcher",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.checkouts = Counter(
            "ledger_db_pool_checkouts", "Connections taken from the pool", registry=self.registry
        )
        self.saturated = Counter(
            "ledger_db_pool_checkout_waits",
            "Checkouts that left no connection free, so that the next one waits",
            registry=self.registry,
        )
        self.pool_timeouts = Counter(
            "ledger_db_pool_timeouts",
            "Requests refused because no connection became free within DB_POOL_TIMEOUT",
            registry=self.registry,
        )
        self.outbox = Gauge(
            "ledger_outbox_events",
            "Outbox events waiting for the relay (pending) or refused by it (failed)",
            ["status"],
            registry=self.registry,
        )
        self.server = Info(
            "ledger_server", "The event loop that serves the requests", registry=self.registry
        )
        self.registry.register(_PoolCollector(engine))
        self._engine = engine
        self._max_overflow = max_overflow
        event.listen(engine.sync_engine.pool, "checkout", self._on_checkout)

    def _on_checkout(self, *_: Any) -> None:
        self.checkouts.inc()
        pool = self._engine.sync_engine.pool
        if (
            isinstance(pool, QueuePool)
            and pool.checkedin() == 0
            and pool.checkedout() >= pool.size() + self._max_overflow
        ):
            self.saturated.inc()

    def watch_relay(self, stats: Callable[[], RelayStats]) -> None:
        """Export the counts of the relay running in this process."""
        self.registry.register(_RelayCollector(stats))

    def set_outbox(self, pending: int, failed: int) -> None:
        """The outbox counts, read from the database by the /metrics route."""
        self.outbox.labels(status="pending").set(pending)
        self.outbox.labels(status="failed").set(failed)

    def close(self) -> None:
        """Stop listening to the pool."""
        event.remove(self._engine.sync_engine.pool, "checkout", self._on_checkout)

    def render(self) -> bytes:
        """The Prometheus text exposition (called from a request: it names the event loop
        that request runs on, e.g. uvloop under `ledgerctl serve`)."""
        loop = type(asyncio.get_running_loop())
        self.server.info({"loop": f"{loop.__module__}.{loop.__qualname__}"})
        return generate_latest(self.registry)
