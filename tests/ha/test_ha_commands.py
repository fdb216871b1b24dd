"""The ``pgportfolio ha`` commands, as a person runs them: up (schema applied, two DSNs),
status, kill-primary (a new primary, the seconds it took), start-node (the killed node
rejoins as a standby), down --remove (no process left)."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from pgportfolio.ha.formation import Formation, find_pg_autoctl

pytestmark = [pytest.mark.debian_extensions, pytest.mark.timeout(300)]


def _ha(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgportfolio", "ha", *args],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def _pids_under(directory: Path) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines() if str(directory) in line]


def test_up_status_kill_primary_start_node_down() -> None:
    if find_pg_autoctl() is None:
        pytest.skip("pg_auto_failover is not installed")
    directory = Path(tempfile.mkdtemp(prefix="pgportfolio-ha-cli-"))
    try:
        up = _ha("up", "--dir", str(directory))
        assert up.returncode == 0, up.stdout + up.stderr
        assert "synchronous_standby_names = ANY 1 (" in up.stdout
        writer = re.search(r"^writer DSN: (.+)$", up.stdout, re.MULTILINE)
        reader = re.search(r"^reader DSN: (.+)$", up.stdout, re.MULTILINE)
        assert writer is not None
        assert reader is not None
        assert "target_session_attrs=read-write" in writer.group(1)
        assert "target_session_attrs=prefer-standby" in reader.group(1)
        with psycopg.connect(writer.group(1)) as conn:  # the schema is there
            assert conn.execute("SELECT count(*) FROM pgportfolio.portfolios").fetchone() == (0,)
        with psycopg.connect(reader.group(1)) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)

        status = _ha("status", "--dir", str(directory))
        assert status.returncode == 0, status.stdout + status.stderr
        assert len(re.findall(r"^node\d .* primary +primary +ok", status.stdout, re.M)) == 1
        assert len(re.findall(r"^node\d .* secondary +secondary +ok", status.stdout, re.M)) == 2

        killed = _ha("kill-primary", "--dir", str(directory))
        assert killed.returncode == 0, killed.stdout + killed.stderr
        name = re.search(r"^killed (node\d)", killed.stdout, re.MULTILINE)
        seconds = re.search(r"new primary ([\d.]+)s after the kill", killed.stdout)
        assert name is not None
        assert seconds is not None
        assert 0 < float(seconds.group(1)) < 60

        started = _ha("start-node", "--dir", str(directory), name.group(1))
        assert started.returncode == 0, started.stdout + started.stderr
        Formation.load(directory).wait_healthy(180)
    finally:
        down = _ha("down", "--dir", str(directory), "--remove")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not directory.exists()
    deadline = time.monotonic() + 10
    while _pids_under(directory) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pids_under(directory) == []
