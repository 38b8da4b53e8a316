"""`bench http --profile`: where a request's CPU goes, layer by layer, from py-spy samples.

py-spy samples the server process (every thread, without pausing it) while wrk measures.
Each sample is charged to one layer, found from the innermost frame that belongs to a
known package, so time in a library counts for the library, not for the code that called
it: a SQLAlchemy frame under a service is "SQLAlchemy". The layers' shares of the samples,
times the CPU per request the run measured, give microseconds per request.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lab.bench.errors import BenchError

INSTALL_HINT: Final = "py-spy is not installed: pip install -e '.[lab]' (or pip install py-spy)"
SAMPLES_PER_SECOND: Final = 250

# (layer, path fragments): the first layer whose fragment a frame's file holds. Order
# matters: the app's own authentication before the services it calls is decided by
# AUTH (below), the drivers before SQLAlchemy's adapters of them.
LAYERS: Final = (
    ("database driver", ("/asyncpg/", "/aiosqlite/", "/sqlite3/", "/psycopg/", "sqlite_one_hop")),
    ("SQLAlchemy", ("/sqlalchemy/", "/greenlet/")),
    ("validation & serialisation", ("/pydantic", "/fastapi/encoders", "/json/", "/orjson")),
    ("routing & dependencies", ("/fastapi/", "/starlette/routing", "/starlette/requests")),
    (
        "middleware, errors & metrics",
        ("/starlette/", "/api/middleware", "/prometheus_client/", "/uuid.py"),
    ),
    (
        "server & event loop",
        ("/uvicorn/", "/httptools/", "/h11/", "/uvloop/", "/asyncio/", "/selectors", "/socket"),
    ),
    ("the app (services, routes)", ("/services/", "/api/", "/repositories/", "/models/", "/db/")),
)
# A sample with the bearer-token dependency on its stack is authentication, whatever runs.
AUTH: Final = "/api/auth.py"
AUTHENTICATION: Final = "authentication"
OTHER: Final = "other (interpreter, stdlib)"
ORDER: Final = (AUTHENTICATION, *(name for name, _ in LAYERS), OTHER)


def py_spy() -> str:
    """The py-spy executable (beside this interpreter, or on PATH); BenchError without."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise BenchError(INSTALL_HINT)
    return found


def _file_of(frame: str) -> str:
    # A raw py-spy frame: "function (path/to/file.py:123)".
    start = frame.rfind(" (")
    return frame[start + 2 :] if start >= 0 else frame


def layer_of(stack: list[str]) -> str:
    """The layer one sampled stack (outermost frame first) is charged to."""
    files = [_file_of(frame) for frame in stack]
    if any(AUTH in f for f in files):
        return AUTHENTICATION
    for file in reversed(files):
        for name, fragments in LAYERS:
            if any(fragment in file for fragment in fragments):
                return name
    return OTHER


def layers(raw: str) -> Counter[str]:
    """Samples per layer, from py-spy's raw (collapsed stacks) output."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[layer_of(stack.split(";"))] += int(count)
    return counts


@dataclass(frozen=True, slots=True)
class Profile:
    """One profiled run: samples per layer, and the CPU per request it measured."""

    scenario: str
    engine: str
    variant: str
    step: int
    samples: dict[str, int]
    cpu_per_request: float

    def microseconds(self) -> dict[str, float]:
        """Each layer's share of the CPU per request, in µs."""
        total = sum(self.samples.values())
        if not total:
            return {}
        return {
            name: self.samples.get(name, 0) / total * self.cpu_per_request * 1e6 for name in ORDER
        }


async def record(executable: str, pid: int, seconds: float, output: Path) -> asyncio.Task[None]:
    """Start sampling `pid` for `seconds` into `output` (raw format); await the task."""
    process = await asyncio.create_subprocess_exec(
        executable, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", str(SAMPLES_PER_SECOND), "--format", "raw",
        "--full-filenames", "--output", str(output),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip

    async def finish() -> None:
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise BenchError(f"py-spy exited {process.returncode}: {out.decode()[-300:]}")

    return asyncio.create_task(finish())


def table(profiles: list[Profile]) -> str:
    """µs per request by layer, one column per profiled run (Markdown)."""
    if not profiles:
        return ""
    heads = [f"{p.scenario} {p.engine} {p.variant} @{p.step}" for p in profiles]
    lines = ["| layer | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(profiles)]
    values = [p.microseconds() for p in profiles]
    for name in ORDER:
        cells = [f"{v.get(name, 0.0):,.0f}" for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = [f"{p.cpu_per_request * 1e6:,.0f}" for p in profiles]
    lines.append("| **CPU per request (µs)** | " + " | ".join(totals) + " |")
    return "\n".join(lines)
