"""The registry of workloads. To add one, write a module with a Workload and list it here.

Workloads run in this order; `hops` first, because the others' tables use the hop cost
it measures.
"""

from __future__ import annotations

from lab.bench.workloads import (
    hops,
    job_peers,
    jobs,
    pg_latency,
    pg_transfers,
    sqlite_reads,
    sqlite_transfers,
)
from lab.bench.workloads.base import Case, Workload, WorkloadEnv

WORKLOADS: tuple[Workload, ...] = (
    hops.WORKLOAD,
    sqlite_transfers.WORKLOAD,
    sqlite_reads.POINT_READS,
    sqlite_reads.DASHBOARD,
    pg_transfers.WORKLOAD,
    pg_latency.WORKLOAD,
    jobs.SQLITE,
    jobs.POSTGRES,
    job_peers.SQLITE_NOOP,
    job_peers.SQLITE_PICKUP,
    job_peers.POSTGRES_NOOP,
    job_peers.POSTGRES_ENQUEUE,
    job_peers.POSTGRES_PICKUP,
)

REGISTRY: dict[str, Workload] = {workload.name: workload for workload in WORKLOADS}

__all__ = ["REGISTRY", "WORKLOADS", "Case", "Workload", "WorkloadEnv"]
