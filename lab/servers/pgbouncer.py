"""A throw-away PgBouncer in transaction mode, for the tests, the benchmark and developers.

    python -m lab.servers.pgbouncer start [--server-url URL] [--pool-size N]
    python -m lab.servers.pgbouncer stop FOLDER

`start` prints two lines, `TEST_PGBOUNCER_URL=<url>` and `PGBOUNCER_DIR=<folder>`, and
leaves PgBouncer running in the background; `stop FOLDER` ends it and removes the folder.

The instance forwards every database name (`* = host=... port=...`), so the databases
that tests and benchmarks create on the fly are reachable through it without a reload.
It runs `DISCARD ALL` after every transaction (`server_reset_query_always = 1`): code
that leans on session state then breaks every time instead of now and then.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy.engine import URL, make_url

DEFAULT_SERVER_URL: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# Debian installs it outside a normal user's PATH.
_CANDIDATES: Final = ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer")
# PgBouncer refuses to run as root; as root we hand it to this user.
_RUN_AS: Final = "postgres"
_START_SECONDS: Final = 15.0
_PID_FILE: Final = "launcher.pid"
_LOG_FILE: Final = "pgbouncer.log"

HOW_TO_INSTALL: Final = (
    "PgBouncer is not installed; install it (Debian/Ubuntu: apt-get install -y pgbouncer, "
    "macOS: brew install pgbouncer) or set TEST_PGBOUNCER_URL to a PgBouncer in transaction "
    "mode that forwards every database (* = host=... port=...) to TEST_POSTGRES_URL's server"
)


class PgBouncerError(RuntimeError):
    """PgBouncer is missing or did not come up; the message says why."""


def find_pgbouncer() -> str | None:
    """The pgbouncer executable, or None if it is not installed."""
    found = shutil.which("pgbouncer")
    if found is not None:
        return found
    return next((c for c in _CANDIDATES if os.access(c, os.X_OK)), None)


@dataclass(frozen=True, slots=True)
class ScratchPgBouncer:
    """A running instance: its folder (config, log), process id and port."""

    folder: Path
    port: int
    server_url: str
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    def url_for(self, database_url: str) -> str:
        """`database_url` (a database on the server behind us) reached through PgBouncer."""
        return through(database_url, "127.0.0.1", self.port)

    @property
    def url(self) -> str:
        """The server URL's own database, through PgBouncer."""
        return self.url_for(self.server_url)

    def log(self) -> str:
        """What PgBouncer has written so far."""
        try:
            return (self.folder / _LOG_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """End the process (if it still runs) and remove the folder."""
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def through(database_url: str, host: str, port: int) -> str:
    """The same database, user and password, at another host and port."""
    return make_url(database_url).set(host=host, port=port).render_as_string(hide_password=False)


def start(
    server_url: str = DEFAULT_SERVER_URL,
    *,
    pool_size: int = 20,
    max_client_conn: int = 1000,
    server_idle_timeout: int = 10,
    ignore_startup_parameters: Sequence[str] = (),
    reset_always: bool = True,
) -> ScratchPgBouncer:
    """Start PgBouncer on a free port in front of `server_url`'s server; return once it listens.

    `pool_size` is `default_pool_size`: server connections per database and user, the
    ceiling PostgreSQL sees however many clients connect. Idle server connections close
    after `server_idle_timeout` seconds, so a shared server gets them back soon.
    `ignore_startup_parameters` are accepted from clients and dropped (not applied).
    `reset_always` runs DISCARD ALL after every transaction, as the tests want; off, the
    instance is configured as transaction pooling is usually run (no reset query).
    """
    binary = find_pgbouncer()
    if binary is None:
        raise PgBouncerError(HOW_TO_INSTALL)
    server = make_url(server_url)
    folder = Path(tempfile.mkdtemp(prefix="ledger-pgbouncer-"))
    try:
        port = _free_port()
        ini = _write_config(
            folder,
            server,
            port,
            [
                f"default_pool_size = {pool_size}",
                f"max_client_conn = {max_client_conn}",
                f"server_idle_timeout = {server_idle_timeout}",
                f"ignore_startup_parameters = {','.join(ignore_startup_parameters)}",
                f"server_reset_query_always = {int(reset_always)}",
            ],
        )
        command = [binary, str(ini)]
        if os.geteuid() == 0:
            _hand_over(folder, _RUN_AS)
            command += ["-u", _RUN_AS]
        with (folder / _LOG_FILE).open("ab") as log:
            # Its own session: a Ctrl-C meant for the test run does not kill it mid-run.
            process = subprocess.Popen(
                command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        (folder / _PID_FILE).write_text(str(process.pid), encoding="utf-8")
        instance = ScratchPgBouncer(folder, port, server_url, process)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        _wait_until_listening(instance)
    except BaseException:
        instance.stop()
        raise
    return instance


def stop(folder: Path) -> None:
    """Stop the instance that `start` left running in `folder`, and remove the folder."""
    try:
        pid = int((folder / _PID_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise PgBouncerError(f"{folder} holds no PgBouncer started by this module") from None
    _terminate(pid)
    shutil.rmtree(folder, ignore_errors=True)


def _write_config(folder: Path, server: URL, port: int, options: Sequence[str]) -> Path:
    user = server.username or _RUN_AS
    password = server.password or ""
    # trust: no password check between client and PgBouncer (the machine's PostgreSQL
    # trusts local connections too); the file still has to list the user, and its
    # password, if any, is what PgBouncer logs in to the server with.
    (folder / "userlist.txt").write_text(f'"{user}" "{password}"\n', encoding="utf-8")
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}",
                "",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {folder / 'userlist.txt'}",
                "pool_mode = transaction",
                "server_reset_query = DISCARD ALL",
                *options,
                "",
            ]
        ),
        encoding="utf-8",
    )
    return ini


def _hand_over(folder: Path, user: str) -> None:
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise PgBouncerError(
            f"PgBouncer refuses to run as root and there is no {user!r} user to run it as; "
            "run as an ordinary user"
        ) from None
    for path in (folder, *folder.iterdir()):
        shutil.chown(path, user=user)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_listening(instance: ScratchPgBouncer) -> None:
    # Waiting for a server process to come up, not synchronising a test: poll its port.
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            raise PgBouncerError(
                f"PgBouncer exited with status {instance.process.returncode}: "
                f"{instance.log().strip()}"
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", instance.port), timeout=1),
        ):
            return
        time.sleep(0.05)
    raise PgBouncerError(f"PgBouncer did not listen within {_START_SECONDS:.0f} s")


def _terminate(pid: int) -> None:
    # Started by another process (`start` on the command line), so not ours to wait for:
    # signal it and poll until it is gone. SIGTERM closes at once (SIGINT would wait for
    # clients to leave).
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> int:
    """`start` or `stop` from the command line (used by .ci/run)."""
    parser = argparse.ArgumentParser(prog="python -m lab.servers.pgbouncer")
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="start PgBouncer; print its URL and folder")
    begin.add_argument(
        "--server-url",
        default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_SERVER_URL),
        help="the PostgreSQL server to front (default: $TEST_POSTGRES_URL or %(default)s)",
    )
    begin.add_argument("--pool-size", type=int, default=20, help="default_pool_size (20)")
    end = commands.add_parser("stop", help="stop the PgBouncer started in FOLDER")
    end.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            instance = start(args.server_url, pool_size=args.pool_size)
            # Shell-quoted, for `eval` in .ci/run.
            print(f"TEST_PGBOUNCER_URL={shlex.quote(instance.url)}")
            print(f"PGBOUNCER_DIR={shlex.quote(str(instance.folder))}")
        else:
            stop(args.folder)
    except PgBouncerError as exc:
        print(f"scratch_pgbouncer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
