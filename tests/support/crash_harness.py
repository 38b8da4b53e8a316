"""Run tests/crash_child.py, kill it with SIGKILL when its output says so, read its log.

The kill is decided from the child's own progress lines, never from elapsed time, so the
moment varies (it is chosen by a seeded rule) while the verdict does not.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.support.paths import PROJECT_ROOT

KillRule = Callable[[Sequence[str]], bool]


@dataclass(frozen=True)
class Request:
    """A transfer the child announced with a `start` line."""

    seq: int
    source: int
    destination: int
    amount: int
    key: str


@dataclass(frozen=True)
class ChildLog:
    """Everything the child printed before it died."""

    lines: tuple[str, ...]

    @property
    def started(self) -> dict[int, Request]:
        requests = {}
        for line in self.lines:
            if line.startswith("start "):
                _, seq, source, destination, amount, key = line.split()
                requests[int(seq)] = Request(
                    int(seq), int(source), int(destination), int(amount), key
                )
        return requests

    @property
    def acknowledged(self) -> dict[int, int]:
        """Transfer id per request that returned before the kill."""
        return {
            int(seq): int(transfer_id)
            for _, seq, transfer_id in (
                line.split() for line in self.lines if line.startswith("done ")
            )
        }

    @property
    def claimed(self) -> list[int]:
        """Ids of the jobs a worker child claimed, in order."""
        return self._job_ids("claimed ")

    @property
    def finished(self) -> list[int]:
        """Ids of the jobs a worker child saw committed as done."""
        return self._job_ids("finished ")

    def _job_ids(self, prefix: str) -> list[int]:
        return [int(line.split()[1]) for line in self.lines if line.startswith(prefix)]

    @property
    def in_flight(self) -> list[Request]:
        """Requests sent but not acknowledged: the client cannot know what became of them."""
        done = self.acknowledged
        return [request for seq, request in self.started.items() if seq not in done]


def when_paused(lines: Sequence[str]) -> bool:
    """Kill as soon as the child says it froze."""
    return bool(lines) and lines[-1].startswith("paused ")


def after_acknowledged(count: int, then_lines: int) -> KillRule:
    """Kill once `count` requests were acknowledged and `then_lines` more lines came."""
    return after_lines("done ", count, then_lines)


def after_lines(prefix: str, count: int, then_lines: int) -> KillRule:
    """Kill once `count` lines began with `prefix` and `then_lines` more lines came."""

    def rule(lines: Sequence[str]) -> bool:
        seen = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        return len(seen) >= count and len(lines) - 1 - seen[count - 1] >= then_lines

    return rule


async def run_until_killed(mode: str, database_url: str, *options: str, kill: KillRule) -> ChildLog:
    """Start the child, SIGKILL it when `kill(lines so far)` is true, return its whole log."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.crash_child",
        mode,
        database_url,
        *options,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    lines: list[str] = []
    try:
        # A bound for a child that hangs, not a synchronisation delay.
        async with asyncio.timeout(60):
            while not kill(lines):
                raw = await process.stdout.readline()
                if not raw:
                    error = (await process.stderr.read()).decode(errors="replace")
                    raise AssertionError(f"the child ended before it was killed:\n{error}")
                lines.append(raw.decode().rstrip("\n"))
            process.kill()
            rest, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == -signal.SIGKILL, process.returncode
    return ChildLog((*lines, *rest.decode().splitlines()))
