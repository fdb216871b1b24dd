"""The commands as a user runs them: demo (with a DSN and with its own server), top, migrate.

Each runs as a real process (``python -m pgportfolio``): a failure must be one line on
stderr with the documented exit status (cli.EXIT_STATUS_HELP), never a traceback.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from rich.console import Console

from pgportfolio.demo import DemoSettings, run_demo
from pgportfolio.migrate import migrate
from pgportfolio.servers import find_local_bindir

COMMAND = [sys.executable, "-m", "pgportfolio"]
# Output reaches the test as it is written, so a test can wait for a line.
UNBUFFERED = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _pgportfolio(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _refused_dsn() -> str:
    """A TCP port on which nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"


def _assert_one_line_failure(
    done: subprocess.CompletedProcess[str], command: str, status: int, *fragments: str
) -> str:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == status, output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"pgportfolio {command}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _drain(fd: int, until: Callable[[bytes], bool], timeout: float, seen: bytes = b"") -> bytes:
    """Read ``fd`` until ``until(everything read)`` or ``timeout``, and keep reading, so
    that the child never blocks on a full pipe or terminal."""
    deadline = time.monotonic() + timeout
    while not until(seen) and (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.1))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other end closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def _wait(process: subprocess.Popen[bytes], fd: int, timeout: float) -> tuple[int, bytes]:
    output = _drain(fd, lambda _: process.poll() is not None, timeout)
    output = _drain(fd, lambda _: False, 0.3, output)  # what it wrote while exiting
    try:
        return process.wait(timeout=1), output
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        message = output.decode(errors="replace")
        raise AssertionError(f"still running after {timeout}s:\n{message}") from None


def _in_terminal(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    """The command with a 120x40 pseudo-terminal as stdin, stdout and stderr."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [*COMMAND, *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**UNBUFFERED, "TERM": "xterm-256color"},
    )
    os.close(follower)
    return process, leader


@pytest.fixture
def migrated(database_factory: Any) -> str:
    dsn: str = database_factory()
    migrate(dsn)
    return dsn


# --------------------------------------------------------------------------- usage


def test_version_prints_the_installed_package_version() -> None:
    done = _pgportfolio("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pgportfolio {importlib.metadata.version('pgportfolio')}"


def test_help_documents_every_exit_status() -> None:
    for args in (["--help"], ["demo", "--help"], ["migrate", "--help"]):
        done = _pgportfolio(*args)
        assert done.returncode == 0, done.stderr
        for status in ("0 ", "1 ", "2 ", "130 "):
            assert f"\n  {status}" in done.stdout, (args, done.stdout)


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        pytest.param(["demo", "--portfolios", "0"], "--portfolios", id="demo-no-portfolios"),
        pytest.param(["demo", "--traders", "0"], "--traders", id="demo-no-traders"),
        pytest.param(["demo", "--duration", "-5"], "--duration", id="demo-negative-duration"),
        pytest.param(["demo", "--duration", "0"], "--duration", id="demo-zero-duration"),
        pytest.param(["demo", "--duration", "nan"], "--duration", id="demo-nan-duration"),
        pytest.param(["demo", "--traders", "many"], "--traders", id="demo-traders-not-a-number"),
        pytest.param(["top", "--interval", "-1"], "--interval", id="top-negative-interval"),
        pytest.param(["top", "--interval", "0"], "--interval", id="top-zero-interval"),
        pytest.param(["top", "--iterations", "0"], "--iterations", id="top-no-iterations"),
        pytest.param(["bench", "--traders", "0"], "--traders", id="bench-no-traders"),
        pytest.param(["bench", "--batch", "-1"], "--batch", id="bench-negative-batch"),
        pytest.param(["bench", "--duration", "inf"], "--duration", id="bench-infinite-duration"),
        pytest.param(["bench", "--loop", "tokio"], "--loop", id="bench-unknown-loop"),
        pytest.param(["demo", "--loop", "tokio"], "--loop", id="demo-unknown-loop"),
        pytest.param(["migrate", "--lock-wait", "-1"], "--lock-wait", id="migrate-negative-wait"),
        pytest.param(["migrate", "--status", "--sql"], "--sql", id="migrate-status-and-sql"),
    ],
)
def test_bad_arguments_are_usage_errors_before_anything_runs(
    args: list[str], complaint: str
) -> None:
    # A refused DSN: had the command started, it would fail differently (status 1).
    dsn = [] if args[0] == "bench" else ["--dsn", _refused_dsn()]
    done = _pgportfolio(*args, *dsn)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert f"pgportfolio {args[0]}: error: argument {complaint}" in done.stderr
    assert "every verification passed" not in done.stdout


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["top", "--iterations", "1"], id="top"),
        pytest.param(["demo", "--duration", "1"], id="demo"),
        pytest.param(["migrate"], id="migrate"),
        pytest.param(["migrate", "--status"], id="migrate-status"),
        pytest.param(["migrate", "--sql"], id="migrate-sql"),
    ],
)
def test_refused_connection_is_one_line_with_libpq_message_and_status_1(
    args: list[str],
) -> None:
    done = _pgportfolio(*args, "--dsn", _refused_dsn())
    _assert_one_line_failure(done, args[0], 1, "Connection refused")


def test_unparsable_dsn_is_one_line_with_status_1() -> None:
    done = _pgportfolio("top", "--dsn", "not a connection string")
    _assert_one_line_failure(done, "top", 1, "connection info string")


def test_top_on_a_database_never_migrated_is_one_line_with_status_1(
    database_factory: Any,
) -> None:
    done = _pgportfolio("top", "--dsn", database_factory(), "--iterations", "1")
    _assert_one_line_failure(done, "top", 1, 'schema "pgportfolio" does not exist')


# --------------------------------------------------------------------------- interrupts


def test_ctrl_c_in_demo_is_one_line_and_status_130(migrated: str) -> None:
    with subprocess.Popen(
        [*COMMAND, "demo", "--dsn", migrated, "--duration", "120", "--traders", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=UNBUFFERED,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            started = _drain(process.stdout.fileno(), lambda out: b"migrated:" in out, 60)
            assert b"migrated:" in started, started
            time.sleep(1.5)  # trading
            assert process.poll() is None, "the demo ended before it was interrupted"
            process.send_signal(signal.SIGINT)
            status, rest = _wait(process, process.stdout.fileno(), 60)
        finally:
            if process.poll() is None:
                process.kill()
        stderr = process.stderr.read().decode()
    stdout = (started + rest).decode()
    assert "Traceback" not in stdout + stderr, stdout + stderr
    assert status == 130, stdout + stderr
    assert stderr.strip().splitlines() == ["pgportfolio demo: interrupted"], stderr
    assert "every verification passed" not in stdout


def test_ctrl_c_in_top_is_one_line_and_status_130(migrated: str) -> None:
    process, terminal = _in_terminal("top", "--dsn", migrated, "--interval", "0.2")
    try:
        shown = _drain(terminal, lambda out: b"busiest portfolios" in out, 30)
        assert b"busiest portfolios" in shown, shown
        process.send_signal(signal.SIGINT)
        status, rest = _wait(process, terminal, 30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(terminal)
    after = rest.decode(errors="replace")
    assert "Traceback" not in after, after
    assert status == 130, after
    assert "pgportfolio top: interrupted" in after


def test_q_quits_top_on_a_terminal(migrated: str) -> None:
    process, terminal = _in_terminal("top", "--dsn", migrated, "--interval", "0.2")
    try:
        shown = _drain(terminal, lambda out: b"busiest portfolios" in out, 30)
        assert b"busiest portfolios" in shown, shown
        # Negative control: other keys and several refreshes later, it still runs.
        os.write(terminal, b"x")
        shown = _drain(terminal, lambda _: False, 1.0, shown)
        assert process.poll() is None, shown
        os.write(terminal, b"q")  # no Enter: keys are read one by one
        status, rest = _wait(process, terminal, 10)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(terminal)
    assert status == 0, rest.decode(errors="replace")
    assert b"Traceback" not in rest
    assert b"q quits" in shown  # and the screen says so


def test_demo_against_a_dsn_verifies_every_portfolio(database_factory: Any) -> None:
    dsn = database_factory()
    done = _pgportfolio("demo", "--dsn", dsn, "--duration", "2", "--traders", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every verification passed" in done.stdout
    assert "pgportfolio operations" in done.stdout  # the monitor report was printed
    # The headline names what it measured: the client's coalescing queue, not PostgreSQL.
    assert "coalescer queue: " in done.stdout
    assert "waited for a turn" in done.stdout
    assert "lock contention" not in done.stdout
    # Not a terminal: every name is whole, e.g. the operations the demo called.
    for name in ("apply_fill", "create_portfolio", "update_market_price", "verify_portfolio"):
        assert f"  {name}: " in done.stdout, done.stdout
    with psycopg.connect(dsn) as conn:
        failed = conn.execute(
            "SELECT count(*) FROM pgportfolio.portfolio_summary AS s,"
            " LATERAL pgportfolio.verify_portfolio(s.portfolio_id) AS v WHERE NOT v.ok"
        ).fetchone()
        events = conn.execute("SELECT count(*) FROM pgportfolio.event_log").fetchone()
    assert failed == (0,)
    assert events is not None
    assert events[0] > 100  # it really traded


@pytest.mark.skipif(find_local_bindir() is None, reason="no local PostgreSQL binaries")
def test_demo_without_a_dsn_starts_and_removes_its_own_server() -> None:
    console = Console(record=True, width=120)
    status = run_demo(DemoSettings(duration=1.5, traders=10, portfolios=2), console=console)
    text = console.export_text()
    assert status == 0, text
    assert "server: local" in text
    assert "throwaway server removed" in text


def test_top_renders_with_only_the_analyst_role(database_factory: Any) -> None:
    dsn = database_factory()
    assert _pgportfolio("migrate", "--dsn", dsn).returncode == 0
    role = "pgportfolio_test_top_analyst"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE pgportfolio_analyst")
        conn.execute("SELECT pgportfolio.create_portfolio('top', 10)")
    try:
        done = _pgportfolio(
            "top", "--dsn", f"{dsn} user={role}", "--iterations", "2", "--interval", "0.2"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "busiest portfolios" in done.stdout
        assert "lock waits" in done.stdout
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_migrate_command_twice(database_factory: Any) -> None:
    dsn = database_factory()
    first = _pgportfolio("migrate", "--dsn", dsn)
    second = _pgportfolio("migrate", "--dsn", dsn)
    assert first.returncode == 0, first.stderr
    assert "0001_initial" in first.stdout
    assert second.returncode == 0
    assert "already up to date" in second.stdout
    # It says which database it migrates, before anything else.
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    for done in (first, second):
        assert done.stdout.splitlines()[0].startswith(f"migrating database '{dbname}' on "), (
            done.stdout
        )
