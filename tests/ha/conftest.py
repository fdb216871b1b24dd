"""One pg_auto_failover formation for the HA tests (a monitor and three nodes on
127.0.0.1), with the schema applied. Tests that kill a node leave the formation healthy
again (the killed node rejoins as a standby) before the next test takes it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgportfolio.ha.formation import INSTALL_HINT, Formation, find_pg_autoctl
from pgportfolio.migrate import migrate
from pgportfolio.servers.local import find_local_bindir
from tests.support.preflight import apt_install


def _install_pg_auto_failover() -> str | None:
    """As the pre-flight does for pgTAP: root with apt-get installs the Debian package of
    the local PostgreSQL major (so that `make test` on a fresh machine runs these tests);
    anyone else is told what to install. None when it was installed."""
    bindir = find_local_bindir()
    if bindir is None or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return INSTALL_HINT
    error = apt_install([f"postgresql-{bindir.parent.name}-auto-failover"])
    return None if error is None else f"{INSTALL_HINT} ({error})"


@pytest.fixture(scope="session")
def formation() -> Iterator[Formation]:
    if find_pg_autoctl() is None:
        problem = _install_pg_auto_failover()
        if find_pg_autoctl() is None:
            pytest.skip(f"pg_auto_failover is not installed: {problem or INSTALL_HINT}")
    # not pytest's tmp_path: as root the nodes run as another user, who must reach the
    # directory, and pytest's temp root is private to root
    directory = Path(tempfile.mkdtemp(prefix="pgportfolio-ha-test-"))
    formation = Formation.up(directory)
    try:
        migrate(formation.writer_dsn)
        yield formation
    finally:
        formation.remove()


@pytest.fixture
def healthy_formation(formation: Formation) -> Formation:
    """The formation, every killed node started again and back as a standby."""
    for name in formation.node_ports:
        if not formation.is_running(name):
            formation.start_node(name)
    formation.wait_healthy(timeout=180)
    return formation
