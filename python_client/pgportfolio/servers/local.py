"""Find the server binaries installed on this machine (Debian packages, ``pg_config``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

DEBIAN_POSTGRESQL_ROOT = Path("/usr/lib/postgresql")
# An explicit bindir wins over any search: .ci/run points it at the embedded PostgreSQL 18
# so that tests which start clusters of their own use the major under test
BINDIR_ENV_VAR = "PGPORTFOLIO_PG_BINDIR"
INSTALL_HINT = "sudo apt-get install postgresql (Debian, Ubuntu)"


def _major_version(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<major>/bin; "9.6" sorts below "10"
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


def has_server_binaries(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


def _bindir_from_pg_config(pg_config: str) -> Path | None:
    try:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    bindir = Path(result.stdout.strip())
    # Debian's pg_config comes with libpq-dev and may name a bindir without a server
    return bindir if has_server_binaries(bindir) else None


def find_local_bindir() -> Path | None:
    """$PGPORTFOLIO_PG_BINDIR if set; else the bindir of ``pg_config`` on PATH; else the
    newest /usr/lib/postgresql/*/bin. Only a directory with initdb and postgres counts."""
    if explicit := os.environ.get(BINDIR_ENV_VAR, "").strip():
        return Path(explicit) if has_server_binaries(Path(explicit)) else None
    pg_config = shutil.which("pg_config")
    if pg_config is not None and (found := _bindir_from_pg_config(pg_config)) is not None:
        return found
    candidates = [p for p in DEBIAN_POSTGRESQL_ROOT.glob("*/bin") if has_server_binaries(p)]
    return max(candidates, key=_major_version, default=None)
