"""Backup and restore, as docs/operations.md describes it: WAL archiving plus a base backup
(pg_basebackup), trades after the backup, the server lost, a new one restored from the
backup and the archive. Every acknowledged operation is there and ``pgportfolio verify``
passes on the restored server. Real servers (the local PostgreSQL binaries)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgportfolio import PortfolioClient
from pgportfolio.migrate import migrate
from pgportfolio.servers import LocalCluster
from pgportfolio.servers.cluster import _free_port

pytestmark = [pytest.mark.debian_extensions, pytest.mark.timeout(300)]

# archive_command and restore_command run in the data directory: the archive is beside it
ARCHIVE = "../archive"
ARCHIVE_COMMAND = f"mkdir -p {ARCHIVE} && test ! -f {ARCHIVE}/%f && cp %p {ARCHIVE}/%f"


def _trade(dsn: str, portfolios: list[int], tag: str) -> dict[tuple[int, str], int]:
    """Deposits and fills on every portfolio; the acknowledged versions by request id."""
    acknowledged = {}
    with PortfolioClient(dsn) as client:
        for round_ in range(20):
            for portfolio in portfolios:
                rid = f"{tag}-{portfolio}-{round_}"
                if round_ % 2:
                    done = client.apply_fill(portfolio, "ABC", 1, Decimal("12.34"), request_id=rid)
                else:
                    done = client.deposit_cash(portfolio, Decimal("1.01"), request_id=rid)
                acknowledged[(portfolio, rid)] = done.portfolio_version
    return acknowledged


def _summaries(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT portfolio_id, cash_balance, equity, version FROM pgportfolio.portfolio_summary"
            " ORDER BY portfolio_id"
        ).fetchall()


def test_restore_from_base_backup_and_wal_archive() -> None:
    cluster = LocalCluster.create(
        settings={"archive_mode": "on", "archive_command": ARCHIVE_COMMAND}
    )
    restored: LocalCluster | None = None
    try:
        cluster.start()
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ledger")
        dsn = make_conninfo(cluster.dsn, dbname="ledger")
        migrate(dsn)
        with PortfolioClient(dsn) as client:
            portfolios = [client.create_portfolio(f"backup-{i}", 1000) for i in range(5)]
        acknowledged = _trade(dsn, portfolios, "before")

        backup = cluster.base_dir / "restore" / "data"
        backup.parent.mkdir()
        if cluster._os_user is not None:
            os.chown(backup.parent, cluster._os_user.uid, cluster._os_user.gid)
        made = cluster.run_tool(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
            "-D", str(backup), "--checkpoint=fast", "--wal-method=none", "--no-sync",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr

        acknowledged |= _trade(dsn, portfolios, "after")  # only in the archived WAL
        with psycopg.connect(dsn, autocommit=True) as conn:
            segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
            assert segment is not None
            deadline = time.monotonic() + 30
            while conn.execute(
                "SELECT coalesce(last_archived_wal, '') < %s FROM pg_stat_archiver", segment
            ).fetchone() != (False,):
                assert time.monotonic() < deadline, "the WAL was not archived within 30s"
                time.sleep(0.1)
        expected = _summaries(dsn)
        cluster.stop("immediate")  # the server is gone; its data directory with it
        shutil.rmtree(cluster.datadir)

        restored = LocalCluster(cluster.bindir, backup.parent, _free_port(), cluster._os_user)
        with (backup / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                f"port = {restored.port}\n"
                f"unix_socket_directories = '{backup.parent}'\n"
                "archive_mode = off\n"
                "restore_command = 'cp ../../archive/%f %p'\n"
            )
        (backup / "recovery.signal").touch()
        if cluster._os_user is not None:
            for path in (backup / "postgresql.auto.conf", backup / "recovery.signal"):
                os.chown(path, cluster._os_user.uid, cluster._os_user.gid)
        restored.logfile.touch()
        if cluster._os_user is not None:
            os.chown(restored.logfile, cluster._os_user.uid, cluster._os_user.gid)
        restored.start(timeout=120)
        restored_dsn = make_conninfo(restored.dsn, dbname="ledger")
        with psycopg.connect(restored_dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while conn.execute("SELECT pg_is_in_recovery()").fetchone() != (False,):
                assert time.monotonic() < deadline, "recovery did not end within 60s"
                time.sleep(0.1)

        assert _summaries(restored_dsn) == expected
        with psycopg.connect(restored_dsn, autocommit=True) as conn:
            present = {
                (pid, rid): version
                for pid, rid, version in conn.execute(
                    "SELECT portfolio_id, request_id, portfolio_version FROM pgportfolio.event_log"
                    " WHERE request_id IS NOT NULL"
                ).fetchall()
            }
        assert present == acknowledged
        verified = subprocess.run(
            [sys.executable, "-m", "pgportfolio", "verify", "--dsn", restored_dsn],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "verified 5 portfolio(s)" in verified.stdout
        assert "every check passed" in verified.stdout
    finally:
        if restored is not None and restored.is_running():
            restored.stop("fast")
        cluster.cleanup()
