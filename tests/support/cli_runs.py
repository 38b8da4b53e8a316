"""Run ledgerctl and capture what it prints: in this process (fast) or as a subprocess.

In-process runs call `cli.main.main()` on a worker thread, so its own `asyncio.run()` has
a thread and event loop to itself. They see every line the command prints; an exception
that would have been a traceback escapes into the test instead. A subprocess run is the
real thing, for what only a whole process shows: output written at exit, or privileges.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from cli.main import main
from tests.support.paths import PROJECT_ROOT


@dataclass(frozen=True)
class CliRun:
    """Exit code and output of one ledgerctl run."""

    code: int
    stdout: str
    stderr: str

    def one_line_error(self, code: int = 1) -> str:
        """Assert the run failed with `code`, printing one line and no traceback; return it."""
        assert self.code == code, (self.code, self.stdout, self.stderr)
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("ledgerctl: error: "), lines[0]
        return lines[0]


async def ledgerctl(*args: str) -> CliRun:
    """Run `ledgerctl ARGS...` in this process; DATABASE_URL and DB_* come from os.environ."""
    return await asyncio.to_thread(ledgerctl_blocking, *args)


def ledgerctl_blocking(*args: str) -> CliRun:
    """`ledgerctl()` for a thread with no running event loop (main() runs its own)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return CliRun(code, out.getvalue(), err.getvalue())


async def ledgerctl_process(
    *args: str, env: Mapping[str, str] | None = None, prefix: Sequence[str] = ()
) -> CliRun:
    """Run `ledgerctl ARGS...` as a subprocess, optionally behind a `prefix` command."""
    process = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        "cli",
        *args,
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return CliRun(process.returncode, stdout.decode(), stderr.decode(errors="replace"))
