"""A throw-away pg_auto_failover formation: a monitor and two PostgreSQL nodes, for the
tests, the benchmark and developers.

    python -m lab.servers.formation start [--database NAME]
    python -m lab.servers.formation stop FOLDER

`start` prints shell assignments (`FORMATION_URL`, `FORMATION_READ_URL`,
`FORMATION_MONITOR_URL`, `FORMATION_DIR`) and leaves the formation running in the
background; `stop FOLDER` ends every process it started, by pid, and removes the folder.
From Python, `start()` returns a `Formation`, which also kills, restarts and switches
nodes over for failover tests (tests/support/formation.py makes it a fixture).

Everything lives in one temporary folder (data directories, pg_autoctl's configuration
and state, logs) on free ports of 127.0.0.1; as root, the processes run as `postgres`
(pg_autoctl and PostgreSQL refuse root). Each node's `pg_autoctl run` is a session
leader, so its keeper and its postmaster share a process group: `kill()` SIGKILLs both,
which is what a machine dying looks like to the monitor and the clients.

The monitor is tuned for a test formation: a failover must take seconds, not the
defaults' half minute, while a loaded 2-core machine must not fail over by mistake.
`TEST_MONITOR_SETTINGS` and `TEST_NODE_SETTINGS` say which values and why; the
defaults and a production setup are in docs/high-availability.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psycopg

PG_AUTOCTL: Final = "pg_autoctl"
DEFAULT_DATABASE: Final = "ledger"
# PostgreSQL's server binaries (pg_ctl, initdb) for pg_autoctl: Debian keeps them off PATH.
_PG_BIN_CANDIDATES: Final = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
# pg_autoctl and PostgreSQL refuse to run as root; as root we hand them to this user.
_RUN_AS: Final = "postgres"
_STATE_FILE: Final = "formation.json"
_START_SECONDS: Final = 90.0

HOW_TO_INSTALL: Final = (
    "pg_auto_failover is not installed; install it (Debian/Ubuntu: apt-get install -y "
    "postgresql-15-auto-failover) to run the high-availability tests"
)

# The monitor's failure detection and promotion, tuned for tests (defaults in brackets).
# A killed primary is promoted away from after about unhealthy_timeout + demote_timeout
# (+ one health check and the keepers' 1 s loop): 6-7 s here instead of ~37 s.
TEST_MONITOR_SETTINGS: Final[Mapping[str, int]] = {
    # How often the monitor connects to each node [5000 ms]: detection starts within 1 s.
    "pgautofailover.health_check_period": 1000,
    # A refused connection fails at once; 1 s bounds a hung one [5000 ms].
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,  # [2]
    "pgautofailover.health_check_retry_delay": 200,  # [2000 ms]
    # A node is failed once health checks fail AND its keeper has not reported for this
    # long [20000 ms]. Keepers report every second; 3 s leaves room for a loaded shared
    # machine, where 1-2 s produced failovers nobody asked for.
    "pgautofailover.node_considered_unhealthy_timeout": 3000,
    # How long the monitor waits for an unreachable primary to demote itself before it
    # promotes the standby [30000 ms]. It must exceed the keepers'
    # network_partition_timeout (below), or a primary cut off from the monitor could still
    # be taking writes when the standby is promoted: two primaries.
    "pgautofailover.primary_demote_timeout": 3000,
}

# Each keeper's own timeouts (`pg_autoctl config set`), defaults in brackets.
TEST_KEEPER_SETTINGS: Final[Mapping[str, int]] = {
    # A primary that sees neither the monitor nor a standby for this long demotes itself
    # [20 s]; kept below primary_demote_timeout (see above).
    "timeout.network_partition_timeout": 2,
    # How long a standby being promoted waits for its WAL receiver to stop [5 s].
    "timeout.prepare_promotion_walreceiver": 2,
}

# PostgreSQL settings of the data nodes (ALTER SYSTEM), defaults in brackets.
TEST_NODE_SETTINGS: Final[Mapping[str, str]] = {
    # A standby whose primary vanished retries the stream this often; the promote request
    # waited for the retry, which added the default's whole 5 s to every failover [5s].
    "wal_retrieve_retry_interval": "500ms",
}


class FormationError(RuntimeError):
    """pg_auto_failover is missing, or the formation did not come up; the message says why."""


def find_pg_autoctl() -> str | None:
    """The pg_autoctl executable, or None if it is not installed."""
    return shutil.which(PG_AUTOCTL) or (
        "/usr/bin/pg_autoctl" if os.access("/usr/bin/pg_autoctl", os.X_OK) else None
    )


def _pg_bin() -> str:
    for candidate in _PG_BIN_CANDIDATES:
        if os.access(Path(candidate) / "pg_ctl", os.X_OK):
            return candidate
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is not None:
        # Resolved: pg_autoctl looks for pg_controldata and initdb beside it.
        return str(Path(pg_ctl).resolve().parent)
    raise FormationError("PostgreSQL's server binaries (pg_ctl) are not installed")


@dataclass(frozen=True, slots=True)
class NodeState:
    """One data node as the monitor sees it."""

    name: str
    port: int
    reported: str
    assigned: str

    @property
    def settled(self) -> bool:
        """Whether the node reached the state the monitor assigned it."""
        return self.reported == self.assigned


@dataclass(slots=True)
class Formation:
    """A running formation: its folder, ports and the pg_autoctl processes it started."""

    folder: Path
    database: str
    monitor_port: int
    node_ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, folder: Path) -> Formation:
        """The formation `start` left running in `folder` (e.g. from the command line)."""
        try:
            state = json.loads((folder / _STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise FormationError(f"{folder} holds no formation started by this module") from None
        return cls(
            folder=folder,
            database=state["database"],
            monitor_port=int(state["monitor_port"]),
            node_ports={str(k): int(v) for k, v in state["node_ports"].items()},
            pids={str(k): int(v) for k, v in state["pids"].items()},
        )

    # -- addresses --------------------------------------------------------------------

    def url(self, *, target_session_attrs: str = "read-write", database: str | None = None) -> str:
        """The multi-host SQLAlchemy URL of the formation: asyncpg tries each node in turn
        and keeps the first whose session matches `target_session_attrs`."""
        hosts = "&".join(f"host=127.0.0.1:{port}" for port in self.node_ports.values())
        name = database or self.database
        return (
            f"postgresql+asyncpg://postgres@/{name}?{hosts}"
            f"&target_session_attrs={target_session_attrs}"
        )

    def read_url(self, database: str | None = None) -> str:
        """Reads that may run on a standby: `prefer-standby` falls back to the primary."""
        return self.url(target_session_attrs="prefer-standby", database=database)

    def node_url(self, name: str, database: str | None = None) -> str:
        """One node alone (no failover)."""
        port = self.node_ports[name]
        return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database or self.database}"

    @property
    def monitor_url(self) -> str:
        """The monitor's database, as a libpq URL (for psql and pg_autoctl)."""
        return f"postgresql://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover"

    # -- state ------------------------------------------------------------------------

    def states(self) -> list[NodeState]:
        """Every data node, as the monitor sees it now."""
        with psycopg.connect(self._monitor_conninfo(), connect_timeout=5) as connection:
            rows = connection.execute(
                "SELECT nodename, nodeport, reportedstate::text, goalstate::text "
                "FROM pgautofailover.node ORDER BY nodeid"
            ).fetchall()
        return [NodeState(str(n), int(p), str(r), str(g)) for n, p, r, g in rows]

    def primary(self) -> str:
        """The name of the node the monitor holds for primary (assigned state)."""
        for node in self.states():
            if node.assigned in ("primary", "wait_primary", "single"):
                return node.name
        raise FormationError(f"no primary: {self.states()}")

    def standby(self) -> str:
        """The name of the other node."""
        primary = self.primary()
        return next(name for name in self.node_ports if name != primary)

    def wait_healthy(self, timeout: float = _START_SECONDS) -> str:
        """Wait until one node is `primary` and the other `secondary`; return the primary."""
        deadline = time.monotonic() + timeout
        last: list[NodeState] = []
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(psycopg.Error):
                last = self.states()
                states = sorted((n.reported, n.assigned) for n in last)
                if len(last) == len(self.node_ports) and states == [
                    ("primary", "primary"),
                    ("secondary", "secondary"),
                ]:
                    return next(n.name for n in last if n.reported == "primary")
            time.sleep(0.2)  # polling the monitor, which has no "wait for state" call
        raise FormationError(f"the formation did not settle within {timeout:.0f} s: {last}")

    def wait_primary_other_than(self, name: str, timeout: float = 60.0) -> str:
        """Wait until a node other than `name` accepts writes as primary (or wait_primary)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.Error):
                for node in self.states():
                    if (
                        node.name != name
                        and node.reported in ("primary", "wait_primary")
                        and node.settled
                    ):
                        return node.name
            time.sleep(0.1)
        raise FormationError(f"no node took over from {name} within {timeout:.0f} s")

    # -- faults -----------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL the node's keeper and its postmaster at once, as if its machine died."""
        pid = self.pids.pop(name)
        postmaster = _postmaster_pid(self.folder / name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if postmaster is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
        child = self._children.pop(name, None)
        if child is not None:
            child.wait()
        _wait_gone(postmaster)
        self._save()

    def restart(self, name: str) -> None:
        """Run a killed node's keeper again: it rejoins the formation (as a standby)."""
        if name in self.pids:
            raise FormationError(f"{name} is running")
        self._spawn(name, [PG_AUTOCTL, "run", "--pgdata", str(self.folder / name)])

    def switchover(self) -> None:
        """A planned switchover (`pg_autoctl perform switchover`); returns once it is done."""
        self._run_as_postgres(
            [
                PG_AUTOCTL,
                "perform",
                "switchover",
                "--monitor",
                self.monitor_url + "?sslmode=disable",
            ]
        )

    def run_sql(self, name: str, statement: str) -> list[tuple[object, ...]]:
        """Run one statement on one node (autocommit) and return its rows."""
        conninfo = (
            f"host=127.0.0.1 port={self.node_ports[name]} user=postgres dbname={self.database}"
        )
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as connection:
            cursor = connection.execute(statement)
            return list(cursor.fetchall()) if cursor.description is not None else []

    # -- lifecycle --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every process it started (by pid) and remove the folder."""
        for name in list(self.pids):
            _terminate_group(self.pids.pop(name))
            with contextlib.suppress(KeyError):
                self._children.pop(name).wait(timeout=1)
        for data in (self.folder / "monitor", *(self.folder / n for n in self.node_ports)):
            postmaster = _postmaster_pid(data)
            if postmaster is not None and _alive(postmaster):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(postmaster, signal.SIGKILL)
                _wait_gone(postmaster)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self, name: str) -> str:
        """What a process (monitor, node1, node2) has logged so far."""
        with contextlib.suppress(OSError):
            return (self.folder / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        return ""

    def _monitor_conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.monitor_port} user=postgres dbname=pg_auto_failover"

    def _environment(self) -> dict[str, str]:
        # pg_autoctl keeps its configuration and state under the XDG folders: ours, so
        # nothing leaks into the postgres user's home and two formations never meet.
        folder = str(self.folder)
        return {
            "PATH": f"{_pg_bin()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": folder,
            "XDG_CONFIG_HOME": f"{folder}/config",
            "XDG_DATA_HOME": f"{folder}/data",
            "XDG_RUNTIME_DIR": f"{folder}/run",
            "LANG": "C.UTF-8",
        }

    def _as_postgres(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        return {"user": _RUN_AS, "group": _RUN_AS, "extra_groups": []}

    def _spawn(self, name: str, command: Sequence[str]) -> None:
        with (self.folder / f"{name}.log").open("ab") as log:
            # Its own session: the keeper and its postmaster form one process group (for
            # kill()), and a Ctrl-C meant for the test run does not reach them.
            child = subprocess.Popen(  # type: ignore[call-overload]
                list(command),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=self._environment(),
                cwd=self.folder,
                start_new_session=True,
                **self._as_postgres(),
            )
        self._children[name] = child
        self.pids[name] = child.pid
        self._save()

    def _run_as_postgres(
        self,
        command: Sequence[str],
        timeout: float = 120.0,
        log: str | None = None,
    ) -> str:
        done = subprocess.run(  # type: ignore[call-overload]
            list(command),
            capture_output=True,
            env=self._environment(),
            cwd=self.folder,
            timeout=timeout,
            check=False,
            start_new_session=True,
            **self._as_postgres(),
        )
        output = done.stdout.decode(errors="replace")
        errors = done.stderr.decode(errors="replace")
        if log is not None:
            with (self.folder / f"{log}.log").open("a", encoding="utf-8") as file:
                file.write(output + errors)
        if done.returncode != 0:
            raise FormationError(
                f"{' '.join(command[:3])} failed ({done.returncode}): {errors.strip()[-2000:]}"
            )
        return str(output)

    def _check_alive(self) -> None:
        for name, child in self._children.items():
            if child.poll() is not None:
                raise FormationError(
                    f"pg_autoctl ({name}) exited with status {child.returncode}: "
                    f"{self.log(name)[-3000:]}"
                )

    def _save(self) -> None:
        state = {
            "database": self.database,
            "monitor_port": self.monitor_port,
            "node_ports": self.node_ports,
            "pids": self.pids,
        }
        (self.folder / _STATE_FILE).write_text(json.dumps(state), encoding="utf-8")


def start(database: str = DEFAULT_DATABASE, *, nodes: int = 2) -> Formation:
    """Start a monitor and `nodes` data nodes; return once they are primary and secondary."""
    if find_pg_autoctl() is None:
        raise FormationError(HOW_TO_INSTALL)
    _pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="ledger-formation-"))
    ports = _free_ports(nodes + 1)
    formation = Formation(
        folder=folder,
        database=database,
        monitor_port=ports[0],
        node_ports={f"node{i}": port for i, port in enumerate(ports[1:], start=1)},
    )
    try:
        for sub in ("config", "data", "run"):
            (folder / sub).mkdir(mode=0o700)
        if os.geteuid() == 0:
            _hand_over(folder)
        _start_monitor(formation)
        for index, name in enumerate(formation.node_ports):
            _start_node(formation, name)
            if index == 0:
                _wait_for(formation, functools.partial(_answers, formation, name))
                # Set before the standby is cloned: pg_basebackup copies the setting.
                for setting, value in TEST_NODE_SETTINGS.items():
                    formation.run_sql(name, f"ALTER SYSTEM SET {setting} = '{value}'")
                formation.run_sql(name, "SELECT pg_reload_conf()")
        formation.wait_healthy()
    except BaseException:
        formation.stop()
        raise
    return formation


def _start_monitor(formation: Formation) -> None:
    formation._spawn(
        "monitor",
        [
            PG_AUTOCTL,
            "create",
            "monitor",
            "--pgdata",
            str(formation.folder / "monitor"),
            "--pgport",
            str(formation.monitor_port),
            "--hostname",
            "127.0.0.1",
            "--auth",
            "trust",
            "--no-ssl",
            "--run",
        ],
    )
    deadline = time.monotonic() + _START_SECONDS
    while True:
        formation._check_alive()
        try:
            with psycopg.connect(
                formation._monitor_conninfo(), autocommit=True, connect_timeout=2
            ) as connection:
                connection.execute("SELECT 1 FROM pgautofailover.formation")
                for setting, value in TEST_MONITOR_SETTINGS.items():
                    connection.execute(f"ALTER SYSTEM SET {setting} = {int(value)}")
                connection.execute("SELECT pg_reload_conf()")
                return
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise FormationError(
                    f"the monitor did not come up: {formation.log('monitor')[-3000:]}"
                ) from None
            time.sleep(0.2)  # waiting for a server process to come up


def _start_node(formation: Formation, name: str) -> None:
    pgdata = str(formation.folder / name)
    formation._run_as_postgres(
        [
            PG_AUTOCTL,
            "create",
            "postgres",
            "--pgdata",
            pgdata,
            "--pgport",
            str(formation.node_ports[name]),
            "--listen",
            "127.0.0.1",
            "--hostname",
            "127.0.0.1",
            "--name",
            name,
            "--dbname",
            formation.database,
            "--auth",
            "trust",
            "--no-ssl",
            "--monitor",
            formation.monitor_url + "?sslmode=disable",
        ],
        log=name,
    )
    # Created, not yet running: the keeper reads these when it starts.
    for setting, value in TEST_KEEPER_SETTINGS.items():
        formation._run_as_postgres(
            [PG_AUTOCTL, "config", "set", "--pgdata", pgdata, setting, str(value)]
        )
    formation._spawn(name, [PG_AUTOCTL, "run", "--pgdata", pgdata])


def _answers(formation: Formation, name: str) -> bool:
    try:
        formation.run_sql(name, "SELECT 1")
    except psycopg.Error:
        return False
    return True


def _wait_for(formation: Formation, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        formation._check_alive()
        if condition():
            return
        time.sleep(0.2)  # waiting for a server process to come up
    raise FormationError(f"the formation did not come up: {formation.log('node1')[-3000:]}")


def stop(folder: Path) -> None:
    """Stop the formation `start` left running in `folder`, and remove the folder."""
    Formation.load(folder).stop()


def _hand_over(folder: Path) -> None:
    try:
        pwd.getpwnam(_RUN_AS)
    except KeyError:
        raise FormationError(
            f"pg_autoctl refuses to run as root and there is no {_RUN_AS!r} user to run it as"
        ) from None
    for path in (folder, *folder.iterdir()):
        shutil.chown(path, user=_RUN_AS, group=_RUN_AS)


def _free_ports(count: int) -> list[int]:
    probes: list[socket.socket] = []
    try:
        for _ in range(count):  # held open together, so the ports differ
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            probes.append(probe)
        return [int(p.getsockname()[1]) for p in probes]
    finally:
        for probe in probes:
            probe.close()


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int | None, timeout: float = 10.0) -> None:
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # waiting for a killed process to be reaped


def _terminate_group(pid: int) -> None:
    # SIGTERM: pg_autoctl stops its postgres (fast shutdown) and exits. A process group
    # that outlives the grace period is killed whole.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _wait_gone(pid)


def shell_assignments(formation: Formation) -> Iterable[str]:
    """What `start` prints, for `eval` in a shell."""
    yield f"FORMATION_URL={shlex.quote(formation.url())}"
    yield f"FORMATION_READ_URL={shlex.quote(formation.read_url())}"
    yield f"FORMATION_MONITOR_URL={shlex.quote(formation.monitor_url)}"
    yield f"FORMATION_DIR={shlex.quote(str(formation.folder))}"


def main(argv: Sequence[str] | None = None) -> int:
    """`start` or `stop` from the command line."""
    parser = argparse.ArgumentParser(prog="python -m lab.servers.formation")
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="start a monitor and two nodes; print their URLs")
    begin.add_argument("--database", default=DEFAULT_DATABASE, help="database (%(default)s)")
    end = commands.add_parser("stop", help="stop the formation started in FOLDER")
    end.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            formation = start(args.database)
            for line in shell_assignments(formation):
                print(line)
        else:
            stop(args.folder)
    except FormationError as exc:
        print(f"formation: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
