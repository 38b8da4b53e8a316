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
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable

from cli.context import AppContext, dispose
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
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default info)",
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
    config = uvicorn.Config(**options)
    server = uvicorn.Server(config)
    # From here on a signal stops the server as uvicorn's own handler would (asyncio's,
    # until now, cancels the command wherever it waits). uvicorn re-raises the signal that
    # stopped it once it has shut down, to this handler again: the command exits 0
    # instead of dying of it. Several workers: uvicorn's supervisor takes signals over in
    # run(); one that came before it stops the command there.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, server.handle_exit)
    await dispose(app.engine)
    # The port is taken before the app starts, so a port in use is one line (uvicorn
    # would start the app, log the error and exit 3); it listens at once, so a client
    # arriving during start-up waits in the backlog instead of being refused.
    sock = _listening_socket(args.host, args.port)
    try:
        if args.workers == 1:
            await server.serve(sockets=[sock])
            return 0
        # uvicorn's supervisor blocks this (otherwise idle) loop and forwards signals to
        # the workers; each worker runs its own server and event loop on the shared socket.
        from uvicorn.supervisors import Multiprocess

        if not server.should_exit:
            Multiprocess(config, sockets=[sock]).run()
        return 0
    finally:
        sock.close()


def _listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` and listening, as uvicorn would bind it; a
    CommandError in one line if it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise CommandError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)  # the workers of --workers N share it
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    # What uvicorn prints when it binds the socket itself; tools wait for this line.
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, sock.getsockname()[1]
    )
    return sock
