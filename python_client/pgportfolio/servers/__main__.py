"""``python -m pgportfolio.servers [--server KIND] [-- COMMAND...]``: a throwaway server.

With a command: start the server, run the command with ``PGPORTFOLIO_TEST_DSN`` set to the
server (and ``PGPORTFOLIO_PG_BINDIR`` to its binaries, so that tests which start clusters of
their own use the same major), remove the server, exit with the command's status. Without:
print the DSN and serve until interrupted. .ci/run uses it for the PostgreSQL 18 run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import cast

from pgportfolio.servers import (
    DEFAULT_ENV_VAR,
    SERVER_CHOICES,
    NoServerAvailable,
    ServerChoice,
    provision_server,
)
from pgportfolio.servers.local import BINDIR_ENV_VAR


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pgportfolio.servers",
        description="start a throwaway PostgreSQL; run a command against it, or serve",
    )
    parser.add_argument(
        "--server", choices=SERVER_CHOICES, default="auto", help="which kind (default: auto)"
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a postgresql.conf setting of a local or embedded cluster (repeatable)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    settings = dict(item.partition("=")[::2] for item in args.setting)

    try:
        with provision_server(
            None, server=cast(ServerChoice, args.server), settings=settings
        ) as server:
            if not command:
                print(server.dsn, flush=True)
                stop = threading.Event()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(signum, lambda *_: stop.set())
                while not stop.wait(0.5):  # a bare wait() would not return to run the handler
                    pass
                return 0
            print(f"{server.kind} server: {server.dsn}", file=sys.stderr, flush=True)
            env = dict(os.environ, **{DEFAULT_ENV_VAR: server.dsn})
            if server.bindir is not None:
                env[BINDIR_ENV_VAR] = str(server.bindir)
            return subprocess.run(command, env=env, check=False).returncode
    except NoServerAvailable as exc:
        print(f"python -m pgportfolio.servers: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
