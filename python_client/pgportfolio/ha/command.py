"""``pgportfolio ha up | status | kill-primary | start-node | down``: a local formation."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pgportfolio.ha.formation import Formation, FormationError

DEFAULT_DIR = "pgportfolio-ha"


def add_commands(ha: argparse.ArgumentParser) -> None:
    """The ``ha`` subcommands, on the ``ha`` parser that cli.py made."""
    actions = ha.add_subparsers(dest="ha_command", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help)
        parser.add_argument(
            "--dir",
            default=DEFAULT_DIR,
            help=f"the formation's directory (default: ./{DEFAULT_DIR})",
        )
        return parser

    up = action(
        "up",
        "create and start a monitor and three nodes on 127.0.0.1 (or start again the "
        "formation in --dir), apply the schema, print the writer and reader DSNs",
    )
    up.add_argument("--no-migrate", action="store_true", help="do not apply the schema")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for it")
    up.set_defaults(handler=_up)
    action("status", "every node's state as the monitor sees it, and the DSNs").set_defaults(
        handler=_status
    )
    action(
        "kill-primary",
        "SIGKILL the primary's pg_autoctl and postmaster (a crash), print how long until "
        "another node took writes",
    ).set_defaults(handler=_kill_primary)
    start = action("start-node", "run a node's pg_autoctl again (after kill-primary)")
    start.add_argument("name", help="node1, node2, ...")
    start.set_defaults(handler=_start_node)
    down = action("down", "stop every process of the formation")
    down.add_argument("--remove", action="store_true", help="then delete the directory")
    down.set_defaults(handler=_down)


def run(args: argparse.Namespace) -> int:
    try:
        result: int = args.handler(args)
    except FormationError as exc:
        print(f"pgportfolio ha {args.ha_command}: {exc}", file=sys.stderr)
        return 1
    return result


def _print_dsns(formation: Formation) -> None:
    print(f"writer DSN: {formation.writer_dsn}")
    print(f"reader DSN: {formation.reader_dsn}")


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    formation = Formation.up(Path(args.dir), timeout=args.timeout, log=print)
    print(f"formation up in {time.monotonic() - started:.1f}s")
    print(f"synchronous_standby_names = {formation.synchronous_standby_names()}")
    if not args.no_migrate:
        from pgportfolio.migrate import migrate

        applied = migrate(formation.writer_dsn, log=print)
        print(f"applied {len(applied)} migration(s)" if applied else "schema up to date")
    _print_dsns(formation)
    return 0


def _status(args: argparse.Namespace) -> int:
    formation = Formation.load(Path(args.dir))
    states = formation.states()
    if not states:
        print("the monitor does not answer (ha up starts it again)")
        return 1
    print(f"{'node':<8} {'port':>6} {'reported':<18} {'assigned':<18} {'health':<8} lsn")
    for s in states:
        health = "ok" if s.healthy else "FAILED"
        print(f"{s.name:<8} {s.port:>6} {s.reported:<18} {s.assigned:<18} {health:<8} {s.lsn}")
    _print_dsns(formation)
    return 0 if formation.healthy() else 1


def _kill_primary(args: argparse.Namespace) -> int:
    formation = Formation.load(Path(args.dir))
    killed_at = time.monotonic()
    killed = formation.kill_primary()
    print(f"killed {killed.name} ({killed.port})")
    seconds = formation.wait_for_new_writer(killed, killed_at)
    print(f"a write committed on the new primary {seconds:.1f}s after the kill")
    return 0


def _start_node(args: argparse.Namespace) -> int:
    formation = Formation.load(Path(args.dir))
    formation.start_node(args.name)
    print(f"started {args.name}; `pgportfolio ha status` shows it rejoin as a standby")
    return 0


def _down(args: argparse.Namespace) -> int:
    formation = Formation.load(Path(args.dir))
    if args.remove:
        formation.remove()
        print(f"stopped and removed {formation.directory}")
    else:
        formation.down()
        print("stopped (ha up starts it again)")
    return 0
