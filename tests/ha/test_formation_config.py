"""Setting a keeper's configuration right after it joined (Formation._config_set): the keeper
may still be writing its file, so a failed ``pg_autoctl config set`` is retried, and a
failure that persists is reported with pg_autoctl's own words. Runs a stand-in pg_autoctl
(a shell script that fails as the real one did in CI, then succeeds); no formation."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgportfolio.ha.formation import Formation, FormationError

_STAND_IN = """#!/bin/sh
# fails the first FAILURES calls as pg_autoctl did on a half-written file, then succeeds
count_file="{directory}/calls"
calls=$(cat "$count_file" 2>/dev/null || echo 0)
calls=$((calls + 1))
echo "$calls" > "$count_file"
echo "$@" >> "{directory}/argv"
if [ "$calls" -le {failures} ]; then
    echo 'ERROR Failed to find section pg_autoctl in "pg_autoctl.cfg"' >&2
    exit 1
fi
"""


@pytest.fixture
def directory() -> Iterator[Path]:
    """A directory under /tmp the server's OS user can reach (postgres runs the stand-in
    when the suite runs as root; pytest's tmp_path is not reachable for it)."""
    path = Path(tempfile.mkdtemp(prefix="pgportfolio-ha-config-"))
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _formation(tmp_path: Path, failures: int) -> Formation:
    script = tmp_path / "pg_autoctl"
    script.write_text(_STAND_IN.format(directory=tmp_path, failures=failures))
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return Formation(tmp_path, {"pg_autoctl": str(script)})


def test_config_set_is_retried_while_the_keeper_writes_its_file(directory: Path) -> None:
    tmp_path = directory
    formation = _formation(tmp_path, failures=2)
    formation._config_set("node1", "timeout.network_partition_timeout", "2", timeout=10)
    assert (tmp_path / "calls").read_text().strip() == "3"
    argv = (tmp_path / "argv").read_text().splitlines()
    node1 = tmp_path / "node1"
    assert argv[-1] == f"config set --pgdata {node1} timeout.network_partition_timeout 2"


def test_config_set_that_keeps_failing_reports_pg_autoctl_s_error(directory: Path) -> None:
    formation = _formation(directory, failures=1_000_000)
    with pytest.raises(FormationError, match="Failed to find section pg_autoctl"):
        formation._config_set("node1", "timeout.network_partition_timeout", "2", timeout=1)
