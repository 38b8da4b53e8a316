"""wrk, the C load generator: the Lua script of a run, the run itself, and its figures.

The Lua script makes every request (a POST body, a per-request Idempotency-Key, a bearer
token taken in turn from the run's users) and prints one JSON line when wrk is done, so
nothing is parsed out of wrk's human-readable report.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lab.bench.errors import BenchError

INSTALL_HINT: Final = "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu package wrk)"
_MARK: Final = "WRK-JSON "
# Longer than any answer a scenario expects (the overloaded ones queue for seconds): an
# answer that slow is measured, not counted as a socket timeout.
TIMEOUT_SECONDS: Final = 30


class WrkMissing(BenchError):
    """wrk is not on PATH."""


def find_wrk() -> str:
    """The wrk executable; WrkMissing (one line: how to install it) when there is none."""
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing(INSTALL_HINT)
    return found


@dataclass(frozen=True, slots=True)
class Request:
    """What every request of a run is: method, path (`{account}` filled per request), body."""

    method: str
    path: str
    transfer_body: bool = False
    authenticated: bool = True


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run: answers, errors and latency percentiles (seconds)."""

    requests: int
    seconds: float
    non_2xx: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    p50: float
    p90: float
    p99: float

    @property
    def rate(self) -> float:
        """Answers per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def socket_errors(self) -> int:
        """Connect, read and write errors and timeouts."""
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts


def _lua_list(values: list[str] | list[int]) -> str:
    return "{" + ", ".join(json.dumps(v) for v in values) + "}"


def lua_script(
    request: Request, tokens: list[str], sources: list[int], destinations: list[int], run: str
) -> str:
    """The script of one run: request `n` acts as user `n mod len(tokens)`."""
    body = (
        'string.format(\'{"source_account_id": %d, "destination_account_id": %d, "amount": 1}\', '
        "sources[i], destinations[i])"
        if request.transfer_body
        else "nil"
    )
    auth = '["Authorization"] = "Bearer " .. tokens[i],' if request.authenticated else ""
    path = json.dumps(request.path).replace("{account}", '" .. sources[i] .. "')
    return f"""
local tokens = {_lua_list(tokens)}
local sources = {_lua_list(sources)}
local destinations = {_lua_list(destinations)}
local run = {json.dumps(run)}
local count = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function request()
  count = count + 1
  local i = (count + (thread_id or 0) * 7919) % #tokens + 1
  local headers = {{
    {auth}
    ["Idempotency-Key"] = run .. "-" .. (thread_id or 0) .. "-" .. count,
    ["Content-Type"] = "application/json",
  }}
  return wrk.format({json.dumps(request.method)}, {path}, headers, {body})
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{_MARK}{{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def parse(output: str) -> WrkResult:
    """The figures of the JSON line the script's `done` printed."""
    for line in output.splitlines():
        if line.startswith(_MARK):
            raw = json.loads(line[len(_MARK) :])
            return WrkResult(
                requests=raw["requests"],
                seconds=raw["duration_us"] / 1e6,
                non_2xx=raw["non_2xx"],
                connect_errors=raw["connect"],
                read_errors=raw["read"],
                write_errors=raw["write"],
                timeouts=raw["timeout"],
                p50=raw["p50_us"] / 1e6,
                p90=raw["p90_us"] / 1e6,
                p99=raw["p99_us"] / 1e6,
            )
    raise BenchError(f"wrk printed no result line: {output.strip()[-300:]!r}")


async def run_wrk(
    executable: str,
    url: str,
    script: Path,
    *,
    connections: int,
    seconds: float,
    cpu: int | None,
) -> WrkResult:
    """One wrk run (one thread: with `cpu`, pinned to that core) against `url`."""
    command = [
        executable,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={TIMEOUT_SECONDS}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise BenchError(f"wrk exited {process.returncode}: {text.strip()[-300:]}")
    return parse(text)
