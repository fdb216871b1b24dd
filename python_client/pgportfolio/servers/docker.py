"""A PostgreSQL container through testcontainers (``pgportfolio[docker]``), on the image
built from ``docker/`` (with pgTAP and plpgsql_check). Docker and testcontainers are
imported lazily, so this module works without them."""

from __future__ import annotations

import gc
import importlib
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psycopg.conninfo import make_conninfo

from pgportfolio.servers.cluster import MAINTENANCE_DB, SUPERUSER
from pgportfolio.servers.kinds import Server

# The image context: shipped in the wheel as _docker, else the source checkout's docker/.
_PACKAGED_DOCKER_DIR = Path(__file__).resolve().parents[1] / "_docker"
DOCKER_DIR = (
    _PACKAGED_DOCKER_DIR
    if _PACKAGED_DOCKER_DIR.is_dir()
    else Path(__file__).resolve().parents[3] / "docker"
)
INSTALL_HINT = "pip install 'pgportfolio[docker]' and a running Docker engine"


def _ping_docker(timeout: float) -> bool:
    try:
        docker = importlib.import_module("docker")
        client = docker.from_env(timeout=timeout)
    except Exception:  # no SDK, no socket, no API version: all mean "not available"
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def docker_available(timeout: float = 2.0) -> bool:
    """True only if a Docker engine actually answers a ping."""
    with warnings.catch_warnings():
        # docker-py leaks the socket of a failed Unix connect (docker/docker-py#3356): have it
        # finalized here, where that ResourceWarning is expected, not in some later test
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return _ping_docker(timeout)
        finally:
            gc.collect()


@contextmanager
def docker_server(docker_dir: Path | None = None) -> Iterator[Server]:
    """A container of the image built from ``docker/`` (pgTAP, plpgsql_check included)."""
    context = docker_dir or DOCKER_DIR
    if not (context / "Dockerfile").is_file():
        raise FileNotFoundError(f"no Dockerfile in {context} (docker/ of the source checkout)")

    from testcontainers.core.image import DockerImage

    try:
        postgres_module = importlib.import_module("testcontainers.community.postgres")
    except ImportError:  # testcontainers before the "community" split; deprecated since
        postgres_module = importlib.import_module("testcontainers.postgres")

    pg_major = os.environ.get("PG_MAJOR", "15")  # the same knob as compose.yaml
    # clean_up=False keeps the tagged image, so later runs reuse the build cache
    with (
        DockerImage(
            path=context,
            tag=f"pgportfolio-postgres:{pg_major}",
            clean_up=False,
            buildargs={"PG_MAJOR": pg_major},
        ) as image,
        postgres_module.PostgresContainer(
            str(image),
            username=SUPERUSER,
            password=SUPERUSER,
            dbname=MAINTENANCE_DB,
            driver=None,
        ) as container,
    ):
        dsn = make_conninfo(
            host=container.get_container_host_ip(),
            port=str(container.get_exposed_port(5432)),
            user=SUPERUSER,
            password=SUPERUSER,
            dbname=MAINTENANCE_DB,
        )
        yield Server(dsn=dsn, kind="docker")
