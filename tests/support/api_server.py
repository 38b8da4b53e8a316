"""`ledgerctl serve` as a real subprocess on a free port, for tests over TCP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tests.support.paths import PROJECT_ROOT

STARTED = "Application startup complete."
# uvicorn binds its socket after the lifespan started (one worker) or before forking
# (several), and says so; until then a request may find nothing, or another process,
# on the port.
LISTENING = "Uvicorn running on"


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(lines: list[str], workers: int) -> bool:
    started = sum(STARTED in line for line in lines)
    return started >= workers and any(LISTENING in line for line in lines)


@dataclass
class Server:
    """A running server: its URL, its process and everything it printed so far."""

    url: str
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        """stdout and stderr, interleaved as printed."""
        return "\n".join(self.lines)

    async def stop(self) -> int:
        """SIGTERM, then the exit status once it has shut down."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout=60)


@asynccontextmanager
async def serving(
    database_url: str, *, workers: int = 1, env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """Start `ledgerctl serve`, wait until every worker has started, stop it at the end."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "--database-url",
        database_url,
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        cwd=PROJECT_ROOT,
        # Warnings shown, so that an unclosed socket or connection appears in the output.
        env={**os.environ, "PYTHONWARNINGS": "default", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    server = Server(url=f"http://127.0.0.1:{port}", process=process)
    started = asyncio.Event()

    async def read() -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            server.lines.append(line.decode(errors="replace").rstrip())
            if _ready(server.lines, workers):
                started.set()
        started.set()  # it exited: let the waiter see why

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait_for(started.wait(), timeout=60)
        if process.returncode is not None or not _ready(server.lines, workers):
            raise AssertionError(f"ledgerctl serve did not start:\n{server.output}")
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=60)
            except TimeoutError:
                process.kill()
                await process.wait()
        await reader
