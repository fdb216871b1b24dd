"""How a PostgreSQL server is found: the choosing logic with fakes, a real local cluster."""

from __future__ import annotations

import os
import signal
import stat
import sys
import time
import types
from pathlib import Path

import psycopg
import pytest

from pgportfolio import servers
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


def test_env_dsn_wins_even_if_docker_is_up() -> None:
    env = {"PGPORTFOLIO_TEST_DSN": DSN}
    assert choose_provider(env, docker_available=_unreachable, local_bindir=_bindir) == "dsn"
    assert choose_provider(env, docker_available=_up, local_bindir=_bindir) == "dsn"


def test_env_var_name_can_be_chosen() -> None:
    env = {"OTHER_DSN": DSN}
    kind = choose_provider(env, env_var="OTHER_DSN", docker_available=_down, local_bindir=_bindir)
    assert kind == "dsn"
    assert choose_provider(env, docker_available=_down, local_bindir=_bindir) == "local"


def test_docker_comes_before_local_binaries() -> None:
    assert choose_provider({}, docker_available=_up, local_bindir=_bindir) == "docker"


def test_local_binaries_when_docker_is_down() -> None:
    assert choose_provider({}, docker_available=_down, local_bindir=_bindir) == "local"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_env_var_counts_as_unset(value: str) -> None:
    env = {"PGPORTFOLIO_TEST_DSN": value}
    assert choose_provider(env, docker_available=_up, local_bindir=_bindir) == "docker"
    assert choose_provider(env, docker_available=_down, local_bindir=_bindir) == "local"


def test_no_server_available_names_what_was_tried() -> None:
    with pytest.raises(NoServerAvailable) as raised:
        choose_provider({}, docker_available=_down, local_bindir=_no_bindir)
    message = str(raised.value)
    assert "PGPORTFOLIO_TEST_DSN" in message
    assert "Docker" in message
    assert "pg_config" in message


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
    return bindir


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
    monkeypatch.setattr(servers, "DEBIAN_POSTGRESQL_ROOT", root)
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
    monkeypatch.setattr(servers, "DEBIAN_POSTGRESQL_ROOT", root)
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
    monkeypatch.setattr(servers, "DEBIAN_POSTGRESQL_ROOT", root)
    monkeypatch.setenv("PATH", str(path_dir))
    assert servers.find_local_bindir() == debian


def test_find_local_bindir_none_when_nothing_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servers, "DEBIAN_POSTGRESQL_ROOT", tmp_path / "missing")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    assert servers.find_local_bindir() is None


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
