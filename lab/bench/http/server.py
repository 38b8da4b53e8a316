"""One server variant as its own process: uvicorn, one worker, optionally pinned to a core."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from lab.bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[3]
START_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Running:
    """A started server: its process id and base URL."""

    pid: int
    url: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_SECONDS
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise BenchError(f"the server exited {process.returncode} before it was ready")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            # Polling a process that is starting up, not synchronising a test.
            await asyncio.sleep(0.05)
    raise BenchError(f"the server at {url} was not ready within {START_SECONDS:.0f} s")


@asynccontextmanager
async def serve(
    factory: str, env: Mapping[str, str], log: Path, *, cpu: int | None
) -> AsyncIterator[Running]:
    """Run `uvicorn --factory <factory>` for the block; SIGTERM and wait at the end."""
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--no-access-log", "--log-level", "warning",
        "--backlog", "4096",
    ]  # fmt: skip
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]  # taskset execs: same pid
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env={**os.environ, **env}, stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(url, process)
        yield Running(process.pid, url)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
