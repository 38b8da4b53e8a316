"""`ledgerctl worker`: run the job worker in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from cli.context import AppContext
from cli.progress import ProgressLine
from services import JobQueue, Worker, WorkerStats, ledger_handlers


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How the command line configures the worker."""

    concurrency: int
    poll_interval: float
    lease_seconds: float
    shutdown_timeout: float
    job_timeout: float | None
    drain: bool
    progress_interval: float


async def run_worker(
    app: AppContext, options: WorkerOptions, out: TextIO = sys.stdout
) -> WorkerStats:
    """Run until SIGINT/SIGTERM (or, with `drain`, until nothing is due or running)."""
    queue = JobQueue(app.sessions)
    worker = Worker(
        queue,
        ledger_handlers(),
        concurrency=options.concurrency,
        poll_interval=options.poll_interval,
        lease_seconds=options.lease_seconds,
        shutdown_timeout=options.shutdown_timeout,
        job_timeout=options.job_timeout,
        listen_url=app.settings.listen_url,
    )
    line = ProgressLine(out)
    line.finish(
        f"worker {worker.worker_id} on {app.settings.display_url}: "
        f"concurrency {options.concurrency}, lease {options.lease_seconds:g}s; "
        "stop with Ctrl-C or SIGTERM"
    )
    stop = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.is_set():
            line.finish(
                f"{signum.name}: stopping; {worker.stats.in_flight} jobs in flight get up to "
                f"{options.shutdown_timeout:g}s to finish"
            )
            stop.set()

    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    reporter = asyncio.create_task(_report(worker, queue, stop, line, options))
    try:
        stats = await worker.run(stop)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
    line.finish(f"worker stopped: {stats}")
    return stats


async def _report(
    worker: Worker,
    queue: JobQueue,
    stop: asyncio.Event,
    line: ProgressLine,
    options: WorkerOptions,
) -> None:
    last_done, last_time = 0, time.perf_counter()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=options.progress_interval)
        stats = worker.stats
        now = time.perf_counter()
        rate = (stats.done - last_done) / max(now - last_time, 1e-9)
        last_done, last_time = stats.done, now
        try:
            q = await queue.stats()
        except Exception as exc:  # the line reports it; the worker has its own handling
            backlog = f"queue unreadable: {type(exc).__name__}"
            idle = False
        else:
            backlog = f"queue: {q.due} due, {q.running} running, {q.dead} dead"
            idle = q.due == 0 and q.running == 0 and stats.in_flight == 0
        if stop.is_set():
            return
        line.show(f"{stats.done} done, {rate:.0f}/s, {stats.in_flight} in flight | {backlog}")
        if options.drain and idle:
            stop.set()
