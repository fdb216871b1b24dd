"""A local pg_auto_failover formation: a monitor and three PostgreSQL nodes on 127.0.0.1.

Everything lives under one directory: the data directories, pg_autoctl's configuration
and state (``XDG_*`` point inside it), one log per process and ``formation.json`` (ports
and the process group of each running ``pg_autoctl``). The processes outlive the command
that started them, so ``pgportfolio ha up`` returns and ``ha kill-primary`` / ``ha down``
find them again from that file.

The nodes use pg_auto_failover's own replication setup: every standby takes part in the
write quorum and ``number_sync_standbys = 1``, so the primary runs with
``synchronous_standby_names = 'ANY 1 (...)'`` and ``synchronous_commit = on``: a commit
is acknowledged once one standby has flushed it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from pgportfolio.ha.settings import KEEPER_SETTINGS, MONITOR_SETTINGS
from pgportfolio.servers.cluster import (
    _free_port,
    _OsUser,
    _process_alive,
    _server_environment,
    _server_os_user,
)
from pgportfolio.servers.local import DEBIAN_POSTGRESQL_ROOT

STATE_FILE = "formation.json"
MONITOR = "monitor"
DBNAME = "pgportfolio"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
EXTENSION_ROOT = Path("/usr/share/postgresql")  # Debian: <major>/extension/*.control
INSTALL_HINT = "apt-get install postgresql-15-auto-failover (Debian, Ubuntu)"
# libpq gives up on a host that does not answer within this many seconds and tries the next
CONNECT_TIMEOUT = 2
# states in which a node takes writes / follows a primary, once it has converged
WRITER_STATES = ("single", "primary", "wait_primary")
STANDBY_STATES = ("secondary",)


# The pg_autoctl processes this process started, by pid (= process group), whichever
# Formation object started them: any of them may be the one that kills and reaps it.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class FormationError(RuntimeError):
    """pg_autoctl failed, or the formation did not reach a state in time; the message
    carries what it said."""


@dataclass(frozen=True)
class NodeState:
    """One row of the monitor's view of the formation."""

    name: str
    port: int
    reported: str
    assigned: str
    healthy: bool
    lsn: str

    @property
    def settled(self) -> bool:
        return self.reported == self.assigned

    @property
    def is_writer(self) -> bool:
        return self.settled and self.reported in WRITER_STATES

    @property
    def is_standby(self) -> bool:
        return self.settled and self.reported in STANDBY_STATES


def find_pg_autoctl() -> tuple[Path, Path] | None:
    """``(pg_autoctl, pg_ctl)``: pg_autoctl on PATH and the pg_ctl of a PostgreSQL major
    that has the pgautofailover extension installed; None if either is missing."""
    autoctl = shutil.which("pg_autoctl")
    if autoctl is None:
        return None
    controls = EXTENSION_ROOT.glob("*/extension/pgautofailover.control")
    for major in sorted((c.parent.parent.name for c in controls), key=_numeric, reverse=True):
        pg_ctl = DEBIAN_POSTGRESQL_ROOT / major / "bin" / "pg_ctl"
        if pg_ctl.is_file():
            return Path(autoctl), pg_ctl
    return None


def _numeric(major: str) -> tuple[int, ...]:
    return tuple(int(part) for part in major.split(".") if part.isdigit())


def _conninfo(ports: Sequence[int], **extra: str) -> str:
    return make_conninfo(
        host=",".join([HOST] * len(ports)),
        port=",".join(map(str, ports)),
        user=SUPERUSER,
        dbname=DBNAME,
        connect_timeout=str(CONNECT_TIMEOUT),
        **extra,
    )


class Formation:
    """A formation under ``directory``: make one with :meth:`up`, find one with :meth:`load`."""

    def __init__(self, directory: Path, state: dict[str, Any]) -> None:
        self.directory = directory.resolve()
        self._state = state

    # -- what it is ------------------------------------------------------------------

    @property
    def monitor_port(self) -> int:
        return int(self._state["monitor_port"])

    @property
    def node_ports(self) -> dict[str, int]:
        return {name: int(port) for name, port in self._state["nodes"].items()}

    @property
    def writer_dsn(self) -> str:
        """Every node, in order; libpq connects to the one that takes writes."""
        return _conninfo(list(self.node_ports.values()), target_session_attrs="read-write")

    @property
    def reader_dsn(self) -> str:
        """Every node; libpq prefers a standby and falls back to the primary."""
        return _conninfo(list(self.node_ports.values()), target_session_attrs="prefer-standby")

    def node_dsn(self, name: str) -> str:
        return _conninfo([self.node_ports[name]])

    @property
    def monitor_dsn(self) -> str:
        return make_conninfo(
            host=HOST,
            port=str(self.monitor_port),
            user=SUPERUSER,
            dbname="pg_auto_failover",
            connect_timeout=str(CONNECT_TIMEOUT),
        )

    def pgdata(self, name: str) -> Path:
        return self.directory / name

    def log_path(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    # -- making one ------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        directory: Path,
        *,
        nodes: int = 3,
        timeout: float = 120,
        log: Callable[[str], None] = lambda _line: None,
    ) -> Formation:
        """Create and start a formation in ``directory`` (empty or new), or start again
        the one already there. Returns once one node is primary and every other one is a
        synchronous-quorum standby."""
        directory = directory.resolve()
        if (directory / STATE_FILE).is_file():
            formation = cls.load(directory)
            formation._start_all(log)
            formation.wait_healthy(timeout)
            return formation
        binaries = find_pg_autoctl()
        if binaries is None:
            raise FormationError(
                f"pg_autoctl or the pgautofailover extension is missing: {INSTALL_HINT}"
            )
        if directory.exists() and any(directory.iterdir()):
            raise FormationError(f"{directory} exists and is not empty")
        ports = _distinct_free_ports(nodes + 1)
        state = {
            "pg_autoctl": str(binaries[0]),
            "pg_ctl": str(binaries[1]),
            "monitor_port": ports[0],
            "nodes": {f"node{i}": port for i, port in enumerate(ports[1:], start=1)},
            "pgroups": {},
        }
        formation = cls(directory, state)
        formation._prepare_directory()
        formation._save()
        try:
            formation._create(log, timeout)
        except BaseException:
            formation.down()
            raise
        return formation

    @classmethod
    def load(cls, directory: Path) -> Formation:
        path = directory / STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FormationError(f"no formation in {directory} (no {STATE_FILE})") from None
        return cls(directory, state)

    def _reload_pgroups(self) -> None:
        # another Formation object (another command) may have restarted a node since
        with contextlib.suppress(OSError, ValueError, KeyError):
            saved = json.loads((self.directory / STATE_FILE).read_text(encoding="utf-8"))
            self._state["pgroups"] = saved["pgroups"]

    def _pgroup(self, name: str) -> int | None:
        """The process group of ``name``'s pg_autoctl, as last recorded."""
        self._reload_pgroups()
        pgroup = self._state["pgroups"].get(name)
        return None if pgroup is None else int(pgroup)

    def _save(self) -> None:
        path = self.directory / STATE_FILE
        path.write_text(json.dumps(self._state, indent=2) + "\n", encoding="utf-8")

    def _prepare_directory(self) -> None:
        for sub in ("", "logs", "config", "share", "run"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        user = _server_os_user()
        if user is not None:  # pg_autoctl and PostgreSQL run as that user and write here
            for sub in ("", "logs", "config", "share", "run"):
                os.chown(self.directory / sub, user.uid, user.gid)

    def _create(self, log: Callable[[str], None], timeout: float) -> None:
        started = time.monotonic()
        autoctl, pg_ctl = self._state["pg_autoctl"], self._state["pg_ctl"]
        common = ["--hostname", HOST, "--auth", "trust", "--no-ssl", "--pgctl", pg_ctl]
        self._spawn(
            MONITOR,
            [autoctl, "create", "monitor", "--pgdata", str(self.pgdata(MONITOR)),
             "--pgport", str(self.monitor_port), "--listen", HOST, *common, "--run"],
        )  # fmt: skip
        self._wait(lambda: self._monitor_ready(), timeout, "the monitor to accept nodes")
        self._tune_monitor()
        log(f"monitor on {HOST}:{self.monitor_port} ({time.monotonic() - started:.1f}s)")
        monitor_uri = f"postgres://autoctl_node@{HOST}:{self.monitor_port}/pg_auto_failover"
        for name, port in self.node_ports.items():
            self._spawn(
                name,
                [autoctl, "create", "postgres", "--pgdata", str(self.pgdata(name)),
                 "--pgport", str(port), "--listen", HOST, "--name", name,
                 "--dbname", DBNAME, "--monitor", f"{monitor_uri}?sslmode=disable",
                 "--replication-quorum", "true", "--candidate-priority", "50",
                 *common, "--run"],
            )  # fmt: skip
            self._wait(functools.partial(self._joined, name), timeout, f"{name} to join")
            for key, value in KEEPER_SETTINGS.items():
                self._config_set(name, key, value, timeout)
            log(f"{name} on {HOST}:{port} ({time.monotonic() - started:.1f}s)")
        self.wait_healthy(timeout)

    def _joined(self, name: str) -> bool:
        """True once ``name`` is a primary or a standby. Until then, a CHECKPOINT on the
        first node each time: a new standby's pg_basebackup (run by pg_autoctl) waits for a
        spread checkpoint, 90 s and more on an idle server, which CHECKPOINT finishes now."""
        if any(s.name == name and (s.is_writer or s.is_standby) for s in self.states()):
            return True
        first = next(iter(self.node_ports))
        if name != first:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(self.node_dsn(first), autocommit=True) as conn,
            ):
                conn.execute("CHECKPOINT")
        return False

    def _tune_monitor(self) -> None:
        with psycopg.connect(self.monitor_dsn, autocommit=True) as conn:
            for name, value in MONITOR_SETTINGS.items():
                conn.execute(f"ALTER SYSTEM SET {name} = {int(value)}")
            conn.execute("SELECT pg_reload_conf()")

    def _monitor_ready(self) -> bool:
        try:
            with psycopg.connect(self.monitor_dsn, autocommit=True) as conn:
                conn.execute("SELECT 1 FROM pgautofailover.formation")
        except psycopg.Error:
            return False
        return True

    # -- processes -------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        # pg_autoctl keeps its configuration and state under XDG_* (or HOME): inside the
        # formation's directory, so that two formations never share them
        return {
            **_server_environment(),
            "HOME": str(self.directory),
            "XDG_CONFIG_HOME": str(self.directory / "config"),
            "XDG_DATA_HOME": str(self.directory / "share"),
            "XDG_RUNTIME_DIR": str(self.directory / "run"),
        }

    def _user_kwargs(self) -> dict[str, Any]:
        user: _OsUser | None = _server_os_user()
        if user is None:
            return {}
        return {"user": user.uid, "group": user.gid, "extra_groups": []}

    def _spawn(self, name: str, argv: list[str]) -> None:
        """Start ``argv`` detached in a process group of its own, logging to its log."""
        with self.log_path(name).open("ab") as out:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self._environment(),
                start_new_session=True,  # survives this command; one killpg ends it all
                **self._user_kwargs(),
            )
        _CHILDREN[child.pid] = child
        self._reload_pgroups()
        self._state["pgroups"][name] = child.pid
        self._save()

    def _config_set(self, name: str, key: str, value: str, timeout: float) -> None:
        """``pg_autoctl config set`` on a node that has just joined. The keeper may still be
        writing its configuration file then (seen in CI: "Failed to find section
        pg_autoctl" in a file being rewritten), so a failure is retried until ``timeout``,
        after which pg_autoctl's last error is raised."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.autoctl("config", "set", "--pgdata", str(self.pgdata(name)), key, value)
                return
            except FormationError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def autoctl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [self._state["pg_autoctl"], *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            errors="replace",  # pg_autoctl's progress output is not always valid UTF-8
            check=False,
            timeout=timeout,
            cwd=self.directory,
            env=self._environment(),
            **self._user_kwargs(),
        )
        if result.returncode != 0:
            raise FormationError(
                f"pg_autoctl {' '.join(args)} failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return str(result.stdout)

    def is_running(self, name: str) -> bool:
        pgroup = self._pgroup(name)
        child = None if pgroup is None else _CHILDREN.get(int(pgroup))
        if child is not None and child.poll() is not None:
            del _CHILDREN[child.pid]  # reaped
        return pgroup is not None and _process_alive(int(pgroup))

    def _start_all(self, log: Callable[[str], None]) -> None:
        for name in (MONITOR, *self.node_ports):
            if not self.is_running(name):
                self.start_node(name)
                log(f"started {name}")

    def start_node(self, name: str) -> None:
        """Run the keeper of ``name`` (after a kill or ``down``): a node that was primary
        comes back as a standby of the new primary (pg_rewind if needed)."""
        if self.is_running(name):
            raise FormationError(f"{name} is running already")
        self._spawn(name, [self._state["pg_autoctl"], "run", "--pgdata", str(self.pgdata(name))])

    def kill(self, name: str) -> None:
        """SIGKILL every process of node ``name`` at once, as a crash of its machine would:
        its keeper's process group, its postmaster and every child of the postmaster.
        (Killing the postmaster alone is not a crash: its WAL senders live on for a
        moment and still ship WAL that was never acknowledged by a standby.) Everything
        is stopped first, so none of them does anything between two kills."""
        pgroup = self._pgroup(name)
        postmaster = _postmaster_pid(self.pgdata(name))
        victims = [] if postmaster is None else [postmaster, *_children_of(postmaster)]
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            if pgroup is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(pgroup), sig)
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        child = None if pgroup is None else _CHILDREN.pop(int(pgroup), None)
        if child is not None:
            child.wait()  # reaped: a zombie is what pg_autoctl run takes for a live keeper

    def kill_primary(self) -> NodeState:
        """Kill the node that takes writes now; returns what the monitor said of it."""
        primary = self.primary()
        if primary is None:
            raise FormationError("no node takes writes now: nothing to kill")
        self.kill(primary.name)
        return primary

    def wait_for_new_writer(self, killed: NodeState, since: float, timeout: float = 120) -> float:
        """Seconds from ``since`` (a monotonic time, the kill) until a transaction with a
        transaction id commits through the writer DSN on another node than ``killed``.
        Its commit waits for the synchronous standby like any write's."""
        deadline = since + timeout
        while True:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(self.writer_dsn, autocommit=True) as conn,
            ):
                row = conn.execute("SELECT inet_server_port()").fetchone()
                if row is not None and row[0] != killed.port:
                    conn.execute("SELECT pg_current_xact_id()")
                    return time.monotonic() - since
            if time.monotonic() > deadline:
                raise FormationError(
                    f"no node took writes within {timeout}s of killing {killed.name}"
                )
            time.sleep(0.05)

    def down(self, timeout: float = 60) -> None:
        """Stop every pg_autoctl (nodes first, then the monitor): a fast shutdown of each
        PostgreSQL; whatever is still up after ``timeout`` is killed."""
        names = [*self.node_ports, MONITOR]
        for name in names:
            pgroup = self._pgroup(name)
            if pgroup is not None and self.is_running(name):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(pgroup), signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            while self.is_running(name) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.is_running(name):
                self.kill(name)
            postmaster = _postmaster_pid(self.pgdata(name))
            while (
                postmaster is not None
                and _process_alive(postmaster)
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
            if postmaster is not None and _process_alive(postmaster):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(postmaster, signal.SIGKILL)

    def remove(self) -> None:
        """``down``, then delete the directory."""
        self.down()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- its state -------------------------------------------------------------------

    def states(self) -> list[NodeState]:
        """The monitor's view of every node (empty if the monitor does not answer)."""
        try:
            with psycopg.connect(self.monitor_dsn, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT nodename, nodeport, reportedstate::text, goalstate::text,"
                    " health = 1, reportedlsn::text FROM pgautofailover.node ORDER BY nodeid"
                ).fetchall()
        except psycopg.Error:
            return []
        return [NodeState(*row) for row in rows]

    def primary(self) -> NodeState | None:
        return next((s for s in self.states() if s.is_writer), None)

    def healthy(self) -> bool:
        """One node takes writes as ``primary`` and every other one is a standby."""
        states = self.states()
        return (
            len(states) == len(self.node_ports)
            and sum(s.is_writer and s.reported == "primary" for s in states) == 1
            and sum(s.is_standby for s in states) == len(states) - 1
        )

    def wait_healthy(self, timeout: float = 120) -> None:
        last_checkpoint = 0.0

        def healthy_or_nudged() -> bool:
            # a node that rejoins by pg_basebackup (when pg_rewind cannot) waits for a
            # spread checkpoint on the primary: ask for an immediate one now and then
            nonlocal last_checkpoint
            if self.healthy():
                return True
            if time.monotonic() - last_checkpoint > 2:
                last_checkpoint = time.monotonic()
                with (
                    contextlib.suppress(psycopg.Error),
                    psycopg.connect(self.writer_dsn, autocommit=True) as conn,
                ):
                    conn.execute("CHECKPOINT")
            return False

        self._wait(healthy_or_nudged, timeout, "one primary and every other node a standby")

    @contextlib.contextmanager
    def replication_paused(self) -> Iterator[list[int]]:
        """SIGSTOP the primary's WAL senders for the block (SIGCONT after it), as when the
        network to every standby stalls: nothing more reaches a standby, so commits wait
        for the synchronous standby (or, replicated asynchronously, are acknowledged with
        no standby having them). Yields the stopped pids. (Stopping the standbys' WAL
        receivers instead would not do: the kernel still takes the WAL into their socket
        buffers, and they read it on SIGCONT.)"""
        stopped: list[int] = []
        try:
            with psycopg.connect(self.writer_dsn, autocommit=True) as conn:
                pids = conn.execute("SELECT pid FROM pg_stat_replication").fetchall()
            for (pid,) in pids:
                os.kill(int(pid), signal.SIGSTOP)
                stopped.append(int(pid))
            yield stopped
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def synchronous_standby_names(self) -> str:
        with psycopg.connect(self.writer_dsn, autocommit=True) as conn:
            row = conn.execute("SHOW synchronous_standby_names").fetchone()
        return "" if row is None else str(row[0])

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                states = "\n".join(map(str, self.states())) or "(the monitor does not answer)"
                raise FormationError(f"waited {timeout}s for {what}; the monitor says:\n{states}")
            time.sleep(0.2)


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = _free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _children_of(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                children.append(int(stat.parent.name))
    return children


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


@contextlib.contextmanager
def formation_in(directory: Path, **kwargs: Any) -> Iterator[Formation]:
    """A formation that is removed (stopped, directory deleted) when the block ends."""
    formation = Formation.up(directory, **kwargs)
    try:
        yield formation
    finally:
        formation.remove()
