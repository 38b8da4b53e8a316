"""`ledgerctl serve`: the HTTP API under uvicorn, with one or several worker processes.

Each worker process builds its own app (api.app:app_from_env), so its own engine, pool
and batcher. The schema is checked before the workers start, as for every command that
needs it, so an unmigrated database is one line and exit 1, not a worker's traceback.
SIGTERM or SIGINT stops taking connections, answers the requests in flight, drains the
batcher, and exits 0.

The command runs on uvloop when it is installed (it comes with `uvicorn[standard]`, as
httptools does, which uvicorn picks by itself): the CLI starts this command's event loop
with `server_loop`, since one worker serves on the loop the command runs on. On the stock
asyncio loop a read cost 14-23% more server CPU (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

from cli.context import AppContext
from cli.errors import CommandError

Handler = Callable[[AppContext, argparse.Namespace], Awaitable[int]]
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]


def add_commands(add: AddCommand) -> None:
    """Register `serve` on the ledgerctl parser."""
    serve = add("serve", serve_command, "serve the HTTP API (FastAPI under uvicorn)")
    serve.set_defaults(loop_factory=server_loop)
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--no-access-log", action="store_true", help="do not log one line per request"
    )


def server_loop() -> asyncio.AbstractEventLoop:
    """The event loop `ledgerctl serve` runs on: uvloop when installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def serve_command(app: AppContext, args: argparse.Namespace) -> int:
    """ledgerctl serve."""
    import uvicorn  # the api extra is optional; only this command needs it

    from api.settings import ApiSettings

    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be 0 to 65535, got {args.port}")
    if not 1 <= args.workers <= 64:
        raise CommandError(f"--workers must be 1 to 64, got {args.workers}")
    # The schema was checked before this ran (the command needs it; see cli/main.py).
    # The workers read their settings from the environment, as every process here does.
    os.environ["DATABASE_URL"] = app.settings.url
    ApiSettings.from_env()  # a bad API_* setting is one line here, not in every worker
    await app.engine.dispose()
    options = {
        "app": "api.app:app_from_env",
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_level": args.log_level,
        "lifespan": "on",
        # Tokens travel in a header, which the access log never prints.
        "access_log": not args.no_access_log,
    }
    # uvicorn re-raises the signal that stopped it once it has shut down; with these
    # handlers that re-raise is a no-op and the command exits 0 instead of dying of it.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: None)
    config = uvicorn.Config(**options)
    if args.workers == 1:
        await uvicorn.Server(config).serve()
        return 0
    # uvicorn's supervisor blocks this (otherwise idle) loop and forwards signals to the
    # workers; each worker runs its own server and event loop on the shared socket, which
    # is ours to close afterwards (uvicorn.run leaves it to the garbage collector).
    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
    return 0
