"""The ``pgportfolio`` command.

Every failure is one line on stderr, ``pgportfolio <command>: <what happened>`` (for a
connection, libpq's own words), and an exit status from :data:`EXIT_STATUS_HELP`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pgportfolio.eventloop import LOOP_CHOICES

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# 3 is bench --strict's "a target was missed" (pgportfolio.bench).
# demo and bench without --dsn: no throwaway server of the kind asked for could be had.
EXIT_NO_SERVER = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

EXIT_STATUS_HELP = """\
exit status:
  0    success (demo, verify: every verification passed; drill: nothing acknowledged
       was lost or duplicated; migrate: applied, or nothing to apply;
       import: every row applied or already in the ledger;
       migrate --status: no applied migration was changed or is unknown)
  1    failure, reported in one line on stderr: cannot connect, a database error, a
       migration refused or failed (also: the migration lock stayed held past
       --lock-wait), demo found a failed check or an unexpected error, a bench
       variant failed, verify found a failed check, drill found an acknowledged
       operation lost or duplicated (or a check failed), ha: pg_autoctl failed,
       import found a bad row or the ledger refused one (each is reported as
       FILE:LINE)
  2    usage error: a bad option or value (demo, bench: also cannot start, e.g. --plot
       without matplotlib, --loop uvloop without uvloop)
  3    bench --strict: every variant was measured, but a target was missed
  4    demo or bench without --dsn: no throwaway server could be had (the message
       names the one-line install that gives one)
  130  interrupted (Ctrl-C)
"""


def _version() -> str:
    try:
        return importlib.metadata.version("pgportfolio")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        from pgportfolio import __version__

        return __version__


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise argparse.ArgumentTypeError(f"must be {bound} seconds, not {text}")
    return value


def _positive_seconds(text: str) -> float:
    return _seconds(text, allow_zero=False)


def _non_negative_seconds(text: str) -> float:
    return _seconds(text, allow_zero=True)


def _one_line(exc: BaseException) -> str:
    """The error as one line: a server error's own message (with its SQLSTATE and hint),
    a client-side one (libpq's words: connection refused, bad conninfo) with its lines
    joined, and any notes the code added (which migration failed)."""
    import psycopg

    text = str(exc)
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        text = f"{exc.diag.message_primary} (SQLSTATE {exc.diag.sqlstate})"
        if exc.diag.message_hint:
            text += f"; hint: {exc.diag.message_hint}"
    parts = [text, *getattr(exc, "__notes__", ())]
    return " ".join(line.strip() for part in parts for line in part.splitlines() if line.strip())


def _cmd_migrate(args: argparse.Namespace) -> int:
    from pgportfolio.migrate import migrate, migration_status, pending_sql

    directory = Path(args.migrations) if args.migrations else None
    if args.status:
        database, migrations = migration_status(args.dsn, directory)
        print(database)
        for m in migrations:
            when = f"{m.applied_at:%Y-%m-%d %H:%M:%S%z}" if m.applied_at else "-"
            checksum = m.checksum or m.recorded_checksum
            line = f"{m.state:<8} {m.name}  {when}  sha256 {checksum}"
            if m.state == "changed":
                line += f" (recorded when applied: {m.recorded_checksum})"
            if m.state == "unknown":
                line += " (recorded in the database; no such file)"
            print(line)
        counts = {s: sum(m.state == s for m in migrations) for s in ("applied", "pending")}
        broken = [m.name for m in migrations if m.state in ("changed", "unknown")]
        print(f"{counts['applied']} applied, {counts['pending']} pending")
        if broken:
            print(
                f"pgportfolio migrate: applied history does not match the files: "
                f"{', '.join(broken)}; migrate will refuse to run",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return EXIT_OK
    if args.sql:
        _database, _names, script = pending_sql(args.dsn, directory)
        sys.stdout.write(script)
        return EXIT_OK
    applied = migrate(args.dsn, directory, lock_wait=args.lock_wait, log=print)
    print(f"applied {len(applied)} migration(s)" if applied else "already up to date")
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pgportfolio.importer import ImportFileError, count_rows, import_fills

    path = Path(args.file)
    console = Console(stderr=True)
    columns = (
        TextColumn("import"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}"),
    )
    with Progress(*columns, console=console, disable=args.no_progress) as bar:
        task = bar.add_task("import", total=count_rows(path), rate="")

        def advance(rows: int) -> None:
            bar.advance(task, rows)
            elapsed = bar.tasks[0].elapsed or 0.0
            if elapsed > 0:
                bar.update(task, rate=f"{bar.tasks[0].completed / elapsed:,.0f} rows/s")

        try:
            report = import_fills(
                args.dsn,
                path,
                args.portfolio,
                chunk_size=args.chunk_size,
                dry_run=args.dry_run,
                progress=advance,
            )
        except ImportFileError as exc:
            print(f"pgportfolio import: {exc}", file=sys.stderr)
            return EXIT_FAILED
    for problem in report.problems:
        code = f" [{problem.sqlstate}]" if problem.sqlstate else ""
        print(f"{path}:{problem.line}:{code} {problem.message}", file=sys.stderr)
    if report.refused_lines is not None:
        first, last = report.refused_lines
        print(
            f"pgportfolio import: stopped at the chunk of lines {first}-{last}, rolled back; "
            f"the {report.rows:,} rows before it are in the ledger (run again after a fix: "
            "they are skipped as duplicates)",
            file=sys.stderr,
        )
    if report.dry_run:
        print(f"checked {report.rows:,} rows, {len(report.problems)} problem(s); sent nothing")
    else:
        print(
            f"{report.rows:,} rows in {report.seconds:.2f} s "
            f"({report.rows_per_second:,.0f} rows/s): {report.applied:,} applied, "
            f"{report.duplicates:,} already in the ledger"
        )
    return EXIT_OK if report.ok else EXIT_FAILED


def _chunk_size(text: str) -> int:
    from pgportfolio.importer import MAX_CHUNK

    value = _positive_int(text)
    if value > MAX_CHUNK:
        raise argparse.ArgumentTypeError(f"at most {MAX_CHUNK}, not {value}")
    return value


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
            loop=args.loop,
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
            import_rows=args.import_rows,
            json_path=Path(args.json) if args.json else None,
            plot_path=Path(args.plot) if args.plot else None,
            seed=args.seed,
            strict=args.strict,
            server=args.server,
            loop=args.loop,
        )
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from pgportfolio.verify import verify_all

    result = verify_all(args.dsn)
    for portfolio, check in result.failures:
        print(f"portfolio {portfolio}: {check} FAILED")
    verdict = "every check passed" if result.ok else f"{len(result.failures)} check(s) failed"
    print(f"verified {result.portfolios} portfolio(s) on {result.server}: {verdict}")
    return EXIT_OK if result.ok else EXIT_FAILED


def _cmd_ha(args: argparse.Namespace) -> int:
    from pgportfolio.ha.command import run

    return run(args)


def _cmd_drill(args: argparse.Namespace) -> int:
    from pgportfolio.ha.drill import DrillSettings, print_result, run_drill

    result = run_drill(
        DrillSettings(
            directory=Path(args.dir) if args.dir else None,
            traders=args.traders,
            failovers=args.failovers,
            warmup=args.warmup,
            settle=args.settle,
            min_acknowledged=args.min_acknowledged,
            stall=args.stall,
            synchronous=not args.asynchronous,
            seed=args.seed,
            json_path=Path(args.json) if args.json else None,
        )
    )
    print_result(result)
    return EXIT_OK if result.ok else EXIT_FAILED


def _add_server_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--server",
        choices=("auto", "docker", "local", "embedded"),
        default="auto",
        help="the throwaway server when there is no --dsn: docker (testcontainers), local "
        "(this machine's PostgreSQL binaries), embedded (the pgportfolio[embedded] wheel); "
        f"auto: the first available in that order. Exit {EXIT_NO_SERVER} if none is",
    )


def _add_loop_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        default="auto",
        help="the event loop the client runs on: asyncio's own, or uvloop (the "
        "pgportfolio[uvloop] extra); auto: uvloop when it is installed",
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
        prog="pgportfolio",
        description="PostgreSQL-native portfolio and position ledger.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=EXIT_STATUS_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    migrate = command(
        "migrate", "bring a database to the current schema (a second run changes nothing)"
    )
    migrate.add_argument(
        "--dsn",
        default="",
        help="libpq connection string or URI; default: the standard PG* environment variables",
    )
    migrate.add_argument(
        "--migrations", help="directory of NNNN_name.sql files (default: built in)"
    )
    mode = migrate.add_mutually_exclusive_group()
    mode.add_argument(
        "--status",
        action="store_true",
        help="list applied and pending migrations with their sha256 checksums; change nothing",
    )
    mode.add_argument(
        "--sql",
        action="store_true",
        help="print the SQL that migrate would run on this database now; run nothing",
    )
    migrate.add_argument(
        "--lock-wait",
        type=_non_negative_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for another session holding the migration lock, then fail "
        "naming it (default 10; 0: do not wait)",
    )
    migrate.set_defaults(handler=_cmd_migrate)

    importer = command(
        "import",
        "apply fills from a CSV file to one portfolio, in chunks, idempotent by request id "
        "(columns: symbol, quantity, price, fee, request_id or execution_id; see "
        "pgportfolio.importer)",
    )
    importer.add_argument("file", metavar="FILE.csv")
    importer.add_argument("--portfolio", type=_positive_int, required=True, metavar="N")
    importer.add_argument(
        "--dsn", default="", help="default: the standard PG* environment variables"
    )
    importer.add_argument(
        "--chunk-size",
        type=_chunk_size,
        default=5000,
        metavar="ROWS",
        help="rows per transaction (default 5000, at most 10000)",
    )
    importer.add_argument(
        "--dry-run", action="store_true", help="check every row, report problems, send nothing"
    )
    importer.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    importer.set_defaults(handler=_cmd_import)

    demo = command("demo", "trade with many concurrent traders, then verify every portfolio")
    demo.add_argument("--dsn", help="use this database (default: start a throwaway server)")
    demo.add_argument("--traders", type=_positive_int, default=100)
    demo.add_argument("--portfolios", type=_positive_int, default=4)
    demo.add_argument("--duration", type=_positive_seconds, default=20.0, help="seconds of trading")
    demo.add_argument("--seed", type=int, default=1)
    _add_server_option(demo)
    _add_loop_option(demo)
    demo.set_defaults(handler=_exits_if_no_server("demo", _cmd_demo))

    top = command("top", "live lock waits, busy portfolios and wait events (q quits)")
    top.add_argument("--dsn", default="", help="default: the standard PG* environment variables")
    top.add_argument(
        "--interval", type=_positive_seconds, default=1.0, help="seconds between refreshes"
    )
    top.add_argument("--iterations", type=_positive_int, help="stop after this many refreshes")
    top.set_defaults(handler=_cmd_top)

    bench = command(
        "bench",
        "throughput and latency of the client and of the SQL functions (pgbench), "
        "against the targets",
    )
    bench.add_argument(
        "--dsn",
        help="a superuser DSN: the bench creates, migrates and drops its own database there "
        "(default: start a throwaway server)",
    )
    bench.add_argument(
        "--scenarios",
        help="comma-separated: hot,spread,ticks,wide,uncontended,monitoring,push,import,soak "
        "(default: all; with --quick, all but soak)",
    )
    bench.add_argument(
        "--duration",
        type=_positive_seconds,
        help="seconds per measurement (default 10; 1 with --quick)",
    )
    bench.add_argument(
        "--traders",
        type=_positive_int,
        default=None,
        help="concurrent apply_fill callers (default 100, 10 with --quick)",
    )
    bench.add_argument(
        "--batch",
        type=_positive_int,
        default=50,
        help="fills per apply_fills call: pgbench's batch and the client's max_batch",
    )
    bench.add_argument(
        "--connections",
        type=_positive_int,
        default=16,
        help="the client's pool size and pgbench's -c (default 16, the client's max_size)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="tiny sizes and 1 s measurements (for tests)"
    )
    bench.add_argument(
        "--soak-fills",
        type=_positive_int,
        help="fills in the soak (default 5,000,000; 3,000 with --quick)",
    )
    bench.add_argument(
        "--import-rows",
        type=_positive_int,
        help="rows of the import scenario's CSV file (default 1,000,000; 20,000 with --quick)",
    )
    bench.add_argument("--json", metavar="FILE", help="write every number to FILE")
    bench.add_argument(
        "--plot", metavar="FILE", help="write a latency chart PNG (needs pgportfolio[plot])"
    )
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 when a target is missed or not measured (default: exit 0 whatever "
        "the targets say, as long as every variant was measured)",
    )
    _add_server_option(bench)
    _add_loop_option(bench)
    bench.set_defaults(handler=_exits_if_no_server("bench", _cmd_bench))

    verify = command(
        "verify",
        "verify_portfolio for every portfolio (after a restore, on a standby); read-only",
    )
    verify.add_argument("--dsn", default="", help="default: the standard PG* environment variables")
    verify.set_defaults(handler=_cmd_verify)

    from pgportfolio.ha.command import add_commands as add_ha_commands

    ha = command("ha", "a local pg_auto_failover formation: a monitor and three nodes")
    add_ha_commands(ha)
    ha.set_defaults(handler=_cmd_ha)

    drill = command("drill", "fault drills against a pg_auto_failover formation")
    drills = drill.add_subparsers(dest="drill", required=True)
    failover = drills.add_parser(
        "failover",
        help="trade while the primary is killed, then check every acknowledged operation",
        description="100 traders (client and raw SQL, request ids) while the primary is "
        "SIGKILLed; then every acknowledged operation must be on the new primary exactly "
        "once, cash and positions exact, verify_portfolio clean on every node. Exit 1 if "
        "anything acknowledged is lost or duplicated.",
    )
    failover.add_argument(
        "--dir",
        help="the directory of a formation (pgportfolio ha up); if it holds none, one is "
        "made there and kept; default: a new one in a temp dir, removed afterwards",
    )
    failover.add_argument("--traders", type=_positive_int, default=100)
    failover.add_argument("--failovers", type=int, default=1, help="kills of the primary")
    failover.add_argument(
        "--warmup", type=_positive_seconds, default=5.0, help="seconds before the first kill"
    )
    failover.add_argument(
        "--settle",
        type=_non_negative_seconds,
        default=3.0,
        help="seconds of trading after the killed node rejoined, before the next kill",
    )
    failover.add_argument(
        "--min-acknowledged",
        type=int,
        default=0,
        help="keep trading after the last failover until this many were acknowledged",
    )
    failover.add_argument(
        "--stall",
        type=_non_negative_seconds,
        default=0.0,
        help="stop the standbys' WAL receivers this many seconds right before each kill "
        "(the crash comes while every standby lags; default 0)",
    )
    failover.add_argument(
        "--asynchronous",
        action="store_true",
        help="the negative control: asynchronous replication (expect lost acknowledgements)",
    )
    failover.add_argument("--json", metavar="FILE", help="write every number to FILE")
    failover.add_argument("--seed", type=int, default=1)
    drill.set_defaults(handler=_cmd_drill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import psycopg

    from pgportfolio.errors import PortfolioError
    from pgportfolio.migrate import MigrationError

    try:
        result: int = args.handler(args)
    except KeyboardInterrupt:
        print(f"pgportfolio {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (psycopg.Error, PortfolioError, MigrationError, OSError) as exc:
        # Expected failures: no server, a refused login, a missing schema, an error the
        # client raised (its own class, e.g. no connection within the pool timeout), a
        # refused migration, an unwritable output file. A bug still shows its traceback.
        print(f"pgportfolio {args.command}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    return result


if __name__ == "__main__":
    sys.exit(main())
