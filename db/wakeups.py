"""Wake-ups for job workers and the outbox relay: who tells an idle one that work was just
committed. Each kind of work has its channel: `JOBS_CHANNEL` for jobs, `OUTBOX_CHANNEL` for
events to publish.

- PostgreSQL: the enqueuing transaction sends NOTIFY on the channel (the server
  delivers it at commit, so never before the job exists); each worker LISTENs on a
  connection of its own, outside the pool, and reconnects when it is lost.
- SQLite: a commit that enqueued wakes the workers of this process on the same file
  (`LOCAL`, an in-process board keyed by database); workers in other processes notice
  with `PRAGMA data_version`, which changes when another connection commits and costs
  no disk read, on a connection of their own.

A wake-up is a hint, never a promise: whoever wakes still claims in SQL, and workers
keep a slow poll in case a hint was lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from db.engine import engine_settings

log = logging.getLogger(__name__)

JOBS_CHANNEL: Final = "ledger_jobs"
OUTBOX_CHANNEL: Final = "ledger_outbox"
# A token was revoked: every process's token cache forgets what it holds.
TOKENS_CHANNEL: Final = "ledger_tokens"
LISTENER_APPLICATION_NAME: Final = "ledger-listener"
_RECONNECT_MIN_S: Final = 0.05
_RECONNECT_MAX_S: Final = 5.0

Wake = Callable[[], None]


def database_key(url: URL | str) -> str:
    """What identifies one database across engines of this process: an SQLite file's
    real path, or a PostgreSQL server and database."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return "sqlite:" + os.path.realpath(parsed.database or "")
    return f"postgresql:{parsed.host}:{parsed.port or 5432}/{parsed.database}"


class LocalBoard:
    """In-process wake-ups, keyed by database: `publish(key)` calls every wake
    subscribed under that key, on the subscriber's own event loop."""

    def __init__(self) -> None:
        self._subscribers: dict[str, dict[int, tuple[asyncio.AbstractEventLoop, Wake]]] = {}
        self._next = 0

    def subscribe(self, key: str, wake: Wake) -> Callable[[], None]:
        """Call `wake` on every publish under `key`; returns the unsubscribe function."""
        token = self._next
        self._next += 1
        self._subscribers.setdefault(key, {})[token] = (asyncio.get_running_loop(), wake)

        def unsubscribe() -> None:
            subscribers = self._subscribers.get(key, {})
            subscribers.pop(token, None)
            if not subscribers:
                self._subscribers.pop(key, None)

        return unsubscribe

    def publish(self, key: str) -> None:
        """Wake every subscriber of `key` (from any thread)."""
        subscribers = self._subscribers.get(key)
        if not subscribers:
            return
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, wake in list(subscribers.values()):
            if loop is current:
                wake()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(wake)


LOCAL: Final = LocalBoard()


def board_key(url: URL | str, channel: str) -> str:
    """The `LOCAL` key of `channel` on the database at `url`."""
    return f"{database_key(url)}#{channel}"


class PostgresListener:
    """LISTEN on `channel` over one connection outside any pool, for as long as
    `run()` runs; every notification, and every (re)connection, calls `wake`.

    Waking on connect is what picks up the jobs committed while the connection was
    down: their NOTIFYs went to no one.
    """

    def __init__(
        self,
        url: str,
        wake: Wake,
        *,
        reconnect_delay: float = _RECONNECT_MIN_S,
        channel: str = JOBS_CHANNEL,
    ):
        self._url = url
        self._wake = wake
        self._channel = channel
        self._reconnect_delay = reconnect_delay
        self.connected = asyncio.Event()
        self.connections = 0  # how many times it connected (a reconnect makes it 2 and more)
        self.server_pid: int | None = None
        self._changed = asyncio.Condition()

    async def wait_connections(self, count: int) -> None:
        """Return once it has connected `count` times in all."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.connections >= count)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff whenever the connection drops."""
        engine = _listener_engine(self._url)
        delay = self._reconnect_delay
        try:
            while True:
                lost = asyncio.Event()
                try:
                    await self._listen(engine, lost)
                    delay = self._reconnect_delay
                except Exception as exc:  # refused, unreachable, terminated: try again
                    log.warning("%s listener: no connection (%s); reconnecting", self._channel, exc)
                self.connected.clear()
                self.server_pid = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
        finally:
            await engine.dispose()

    async def _listen(self, engine: AsyncEngine, lost: asyncio.Event) -> None:
        async with engine.connect() as connection:
            # The asyncpg connection itself: SQLAlchemy has no API for LISTEN.
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            driver.add_termination_listener(lambda _connection: lost.set())

            def notified(*_: object) -> None:
                self._wake()

            await driver.add_listener(self._channel, notified)
            self.server_pid = int(driver.get_server_pid())
            self.connections += 1
            self.connected.set()
            async with self._changed:
                self._changed.notify_all()
            self._wake()
            try:
                await lost.wait()
            finally:
                if lost.is_set():
                    # Dead: discard it rather than hand it back to be reset.
                    await connection.invalidate()


def _listener_engine(url: str) -> AsyncEngine:
    # NullPool: the connection is this listener's alone, opened and closed with it.
    return create_async_engine(
        url,
        poolclass=NullPool,
        connect_args={"server_settings": {"application_name": LISTENER_APPLICATION_NAME}},
    )


class SqliteWatcher:
    """Poll `PRAGMA data_version` every `interval` seconds on a connection of its own;
    call `wake` whenever another connection has committed since the last look."""

    def __init__(self, database: str, wake: Wake, interval: float) -> None:
        self._database = database
        self._wake = wake
        self._interval = interval
        self.checks = 0
        # Set once the first version is read: a commit before that would go unnoticed.
        self.watching = asyncio.Event()

    async def run(self) -> None:
        """Watch until cancelled."""
        import aiosqlite

        async with aiosqlite.connect(self._database) as connection:
            last: object = None
            while True:
                async with connection.execute("PRAGMA data_version") as cursor:
                    row = await cursor.fetchone()
                self.checks += 1
                version = None if row is None else row[0]
                if last is not None and version != last:
                    self._wake()
                last = version
                self.watching.set()
                await asyncio.sleep(self._interval)


_WAKE_KEY: Final = "ledger_wake"
_session_hooks: list[bool] = []


def wake_after_commit(session: Any, channel: str = JOBS_CHANNEL) -> None:
    """Publish `channel` on `LOCAL` once `session`'s transaction commits (not if it rolls
    back).

    `session` is an AsyncSession or its sync Session. The key is the channel on the
    database the session is bound to; the hooks are installed on the Session class the
    first time.
    """
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    sync: Session = getattr(session, "sync_session", session)
    if not _session_hooks:
        event.listen(Session, "after_commit", _published_on_commit)
        event.listen(Session, "after_rollback", _forgotten_on_rollback)
        _session_hooks.append(True)
    sync.info.setdefault(_WAKE_KEY, set()).add(board_key(sync.get_bind().engine.url, channel))


def _published_on_commit(session: Any) -> None:
    for key in session.info.pop(_WAKE_KEY, ()):
        LOCAL.publish(key)


def _forgotten_on_rollback(session: Any) -> None:
    session.info.pop(_WAKE_KEY, None)


class Wakeups:
    """Every wake-up source for `channel` (default: jobs) on `engine`'s database, running
    while entered:
    on PostgreSQL a `PostgresListener` (on `listen_url`, default: the DB_LISTEN_URL of the
    engine's settings, else the engine's URL); on
    SQLite the in-process board plus a `SqliteWatcher` polling every `poll_interval`.

    `live` says whether a wake-up would reach us now (the listener is connected); while
    it is not, a worker should poll as if it had none.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        wake: Wake,
        *,
        poll_interval: float,
        listen_url: str | None = None,
        channel: str = JOBS_CHANNEL,
    ) -> None:
        self._engine = engine
        self._channel = channel
        self._wake = wake
        self._poll_interval = poll_interval
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self.listener: PostgresListener | None = None
        self.watcher: SqliteWatcher | None = None
        url = engine.url
        if url.get_backend_name() == "postgresql":
            target = listen_url or _listener_url(engine)
            self.listener = PostgresListener(target, wake, channel=channel)
        else:
            self.watcher = SqliteWatcher(url.database or "", wake, poll_interval)

    @property
    def live(self) -> bool:
        """Whether a job committed now would wake us."""
        listening = self.listener is None or self.listener.connected.is_set()
        return listening and (self.watcher is None or self.watcher.watching.is_set())

    async def __aenter__(self) -> Wakeups:
        if self.listener is not None:
            self._tasks.append(asyncio.create_task(self.listener.run(), name="wakeups-listener"))
        if self.watcher is not None:
            key = board_key(self._engine.url, self._channel)
            self._unsubscribe = LOCAL.subscribe(key, self._wake)
            self._tasks.append(asyncio.create_task(self.watcher.run(), name="wakeups-watcher"))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


def _listener_url(engine: AsyncEngine) -> str:
    # The engine's own settings say where to LISTEN: behind a transaction pooler they
    # require a direct DB_LISTEN_URL, since the pooler would hand the LISTEN's server
    # session to other clients.
    settings = engine_settings(engine)
    if settings is not None:
        return settings.listener_url
    return engine.url.render_as_string(hide_password=False)
