"""Benchmark sizes: the full run, the quick one, and anything set on the command line."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

DEFAULT_POSTGRES_URL: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Every size the workloads use. The defaults are the full run (under ~10 minutes)."""

    reps: int = 3
    accounts: int = 50
    hop_ops: int = 5_000
    transfer_ops: int = 1_000
    clients: tuple[int, ...] = (16, 64)
    pool: int = 5
    read_ops: int = 1_000
    read_clients: int = 16
    read_pools: tuple[int, ...] = (1, 2, 5)
    pg_transfer_ops: int = 500
    pg_clients: tuple[int, ...] = (16, 64)
    pg_pool: int = 16
    latency_ops: int = 500
    latency_clients: int = 50
    latency_pools: tuple[int, ...] = (1, 5, 20)
    job_ops: int = 800
    seed: int = 2026
    workloads: tuple[str, ...] = ()
    postgres_url: str = DEFAULT_POSTGRES_URL
    postgres: bool = True
    # A PgBouncer (transaction mode) in front of postgres_url's server, forwarding every
    # database; None: the runner starts one if pgbouncer is installed (see bench/pooler.py).
    pgbouncer_url: str | None = None
    pgbouncer: bool = True

    def __post_init__(self) -> None:
        for name in ("reps", "accounts", "hop_ops", "transfer_ops", "pool", "read_ops"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("read_clients", "pg_transfer_ops", "pg_pool", "job_ops"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.latency_ops < 1 or self.latency_clients < 1:
            raise ValueError("latency sizes must be at least 1")
        if self.accounts < 2:
            raise ValueError("accounts must be at least 2 (a transfer needs two)")
        for name in ("clients", "pg_clients", "read_pools", "latency_pools"):
            values: tuple[int, ...] = getattr(self, name)
            if any(v < 1 for v in values):
                raise ValueError(f"{name} must all be at least 1")

    def warmup(self, size: int) -> int:
        """Untimed operations before each timed run: caches, pools and prepared statements."""
        return min(50, max(5, size // 10))

    def with_overrides(self, **changes: Any) -> BenchConfig:
        """A copy with every change that is not None."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


FULL: Final = BenchConfig()
QUICK: Final = BenchConfig(
    hop_ops=1_000,
    transfer_ops=150,
    clients=(16,),
    read_ops=150,
    read_pools=(1, 5),
    pg_transfer_ops=60,
    pg_clients=(16,),
    latency_ops=60,
    latency_pools=(1, 20),
    job_ops=150,
)
