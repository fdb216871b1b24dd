"""Pre-flight: the server the suite will use must have pgTAP and plpgsql_check.

Without them every database test fails on its own, one traceback each. So before the
first test (and only when a collected test needs a database) this plugin looks at the
server: with ``PGPORTFOLIO_TEST_DSN`` it asks that server (``pg_available_extensions``);
without it, when the suite will start a throwaway cluster from the local binaries, it
looks in those binaries' share directory. A Docker server is built from ``docker/``,
which installs both, so it is not looked at.

If something is missing and the server is a Debian-packaged one on this machine, and we
are root with apt-get, the packages are installed (``apt-get update`` first if apt does
not know them). Otherwise the run stops before the first test with one line saying what
to install. :func:`decide` holds that choice, apart from the facts, so it is unit-tested.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pgportfolio.servers import (
    NoServerAvailable,
    choose_provider,
    docker_available,
    find_embedded_bindir,
    find_local_bindir,
)

# extension name -> (how people call it, Debian package name)
EXTENSIONS = {
    "pgtap": ("pgTAP", "postgresql-{major}-pgtap"),
    "plpgsql_check": ("plpgsql_check", "postgresql-{major}-plpgsql-check"),
}
DSN_ENV_VAR = "PGPORTFOLIO_TEST_DSN"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Wait for another apt or dpkg run instead of failing on its lock.
APT_LOCK_WAIT = ("-o", "DPkg::Lock::Timeout=300")


@dataclass(frozen=True)
class ServerFacts:
    where: str  # "host:port" as the message shows it
    major: int
    missing: tuple[str, ...]  # extension names, in the order of EXTENSIONS
    local_debian: (
        bool  # on this machine, from Debian's packages (share dir /usr/share/postgresql/N)
    )


@dataclass(frozen=True)
class HostFacts:
    is_root: bool
    has_apt: bool


@dataclass(frozen=True)
class Ready:
    pass


@dataclass(frozen=True)
class Install:
    packages: tuple[str, ...]


@dataclass(frozen=True)
class Stop:
    message: str


Decision = Ready | Install | Stop


def packages_for(facts: ServerFacts) -> tuple[str, ...]:
    return tuple(EXTENSIONS[name][1].format(major=facts.major) for name in facts.missing)


def missing_message(facts: ServerFacts, host: HostFacts) -> str:
    names = " and ".join(EXTENSIONS[name][0] for name in facts.missing)
    verb = "is" if len(facts.missing) == 1 else "are"
    head = f"{names} {verb} not installed for PostgreSQL {facts.major} at {facts.where}"
    command = f"apt-get install {' '.join(packages_for(facts))}"
    if facts.local_debian and host.has_apt:
        return f"{head}: as root run `{command}`"
    pronoun = "it" if len(facts.missing) == 1 else "them"
    return f"{head}: install {pronoun} for that server (Debian: `{command}`)"


def decide(server: ServerFacts, host: HostFacts) -> Decision:
    if not server.missing:
        return Ready()
    if server.local_debian and host.is_root and host.has_apt:
        return Install(packages_for(server))
    return Stop(missing_message(server, host))


# --- facts ----------------------------------------------------------------------------


def host_facts() -> HostFacts:
    return HostFacts(is_root=os.geteuid() == 0, has_apt=shutil.which("apt-get") is not None)


def _debian_share_dir(share_dir: str, major: int) -> bool:
    return share_dir == f"/usr/share/postgresql/{major}" and Path(share_dir).is_dir()


def server_facts(conninfo: str) -> ServerFacts:
    """Ask a running server. The DSN is a superuser's, so pg_config and data_directory
    are readable; a server is on this machine if its data directory is here too."""
    with psycopg.connect(conninfo, connect_timeout=10, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int / 10000,"
            " current_setting('data_directory'),"
            " (SELECT setting FROM pg_config WHERE name = 'SHAREDIR'),"
            " ARRAY(SELECT name::text FROM pg_available_extensions WHERE name = ANY(%s))",
            (list(EXTENSIONS),),
        ).fetchone()
        host, port = conn.info.host, conn.info.port
    assert row is not None
    major, data_directory, share_dir, available = row
    on_this_machine = (host.startswith("/") or host in LOOPBACK) and Path(data_directory).is_dir()
    return ServerFacts(
        where=f"{host}:{port}",
        major=major,
        missing=tuple(name for name in EXTENSIONS if name not in available),
        local_debian=on_this_machine and _debian_share_dir(share_dir, major),
    )


def local_binaries_facts(bindir: Path) -> ServerFacts | None:
    """The throwaway cluster is not started yet: read its binaries' share directory.
    None when the binaries have no pg_config to ask (the fixture will report)."""
    config = bindir / "pg_config"
    if not config.is_file():
        return None
    share, version = (
        subprocess.run(
            [str(config), option], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        for option in ("--sharedir", "--version")
    )
    found = re.match(r"PostgreSQL (\d+)", version)  # "PostgreSQL 15.8 (Debian 15.8-0+deb12u1)"
    if found is None:
        return None
    major = int(found.group(1))
    extension_dir = Path(share) / "extension"
    return ServerFacts(
        where=f"{bindir} (the suite's throwaway cluster)",
        major=major,
        missing=tuple(n for n in EXTENSIONS if not (extension_dir / f"{n}.control").is_file()),
        local_debian=_debian_share_dir(share, major),
    )


# --- acting ---------------------------------------------------------------------------


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", *APT_LOCK_WAIT, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env={**os.environ, **APT_ENV},
    )


def apt_install(packages: Sequence[str]) -> str | None:
    """Install with apt-get; None on success, else apt's last error line."""
    known = subprocess.run(
        ["apt-cache", "show", *packages], capture_output=True, text=True, check=False
    )
    if known.returncode != 0:  # apt's lists are missing or too old to know the packages
        _apt("update", "-q")
    done = _apt("install", "-y", "-q", *packages)
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"apt-get exited {done.returncode}"


def ensure_extensions(
    facts_of: Callable[[], ServerFacts | None], say: Callable[[str], None]
) -> None:
    """Make the extensions available, or raise pytest.UsageError (one line, exit status 4)."""
    server, host = facts_of(), host_facts()
    if server is None:
        return
    decision = decide(server, host)
    if isinstance(decision, Stop):
        raise pytest.UsageError(decision.message)
    if isinstance(decision, Install):
        say(f"pre-flight: installing {' '.join(decision.packages)} with apt-get")
        if (error := apt_install(decision.packages)) is not None:
            raise pytest.UsageError(f"{missing_message(server, host)} (apt-get failed: {error})")
        if (after := facts_of()) is not None and after.missing:
            raise pytest.UsageError(f"{missing_message(after, host)} (still missing after apt-get)")


def facts_source(environ: Mapping[str, str]) -> Callable[[], ServerFacts | None]:
    """How to learn about the server the suite will use, chosen as the suite chooses it."""
    try:
        kind = choose_provider(
            environ,
            docker_available=docker_available,
            local_bindir=find_local_bindir,
            embedded_bindir=find_embedded_bindir,
        )
    except NoServerAvailable as exc:
        raise pytest.UsageError(str(exc)) from exc
    if kind == "dsn":
        dsn = environ[DSN_ENV_VAR]

        def ask_server() -> ServerFacts:
            try:
                return server_facts(dsn)
            except psycopg.OperationalError as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise pytest.UsageError(f"cannot connect to ${DSN_ENV_VAR}: {first}") from exc

        return ask_server
    finder = {"local": find_local_bindir, "embedded": find_embedded_bindir}.get(kind)
    bindir = finder() if finder is not None else None
    if bindir is not None:
        return lambda: local_binaries_facts(bindir)
    return lambda: None  # Docker: the image built from docker/ has both


def pytest_collection_finish(session: pytest.Session) -> None:
    needs_server = any("admin_conninfo" in getattr(i, "fixturenames", ()) for i in session.items)
    if not needs_server or session.config.option.collectonly:
        return
    # A run on a server without the extensions, by choice (the PostgreSQL 18 run of
    # .ci/run): tests/conftest.py does not create them, the tests needing them are
    # deselected (marker debian_extensions).
    if os.environ.get("PGPORTFOLIO_TEST_EXTENSIONS", "").strip() == "none":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    ensure_extensions(facts_source(os.environ), say)
