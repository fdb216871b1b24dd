"""Unit tests with fakes: retry policy, error mapping, monitor, locks. No database."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pgportfolio import (
    AsyncLockRegistry,
    InProcessLockTimeout,
    LockRegistry,
    Monitor,
    MonitoredLock,
    RetryPolicy,
    get_global_monitor,
)
from pgportfolio.errors import (
    RETRYABLE_SQLSTATES,
    ConnectionLost,
    ConnectionUnavailable,
    InsufficientCash,
    InvalidInput,
    LockTimeout,
    NotPermitted,
    TransientConflict,
    VersionConflict,
    error_from_database,
    error_from_sqlstate,
)
from pgportfolio.models import MutationResult
from pgportfolio.monitor import LatencyHistogram
from pgportfolio.prometheus import register
from pgportfolio.queries import QUERIES, parse_queries
from pgportfolio.retry import retry_cause
from pgportfolio.values import as_decimal

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeDiag:
    message_primary: str | None = "boom"
    message_detail: str | None = None
    message_hint: str | None = None


@dataclass
class FakeError:
    sqlstate: str | None
    diag: FakeDiag


def mapped(sqlstate: str | None, detail: str | None = None) -> object:
    return error_from_database(FakeError(sqlstate, FakeDiag(message_detail=detail)), portfolio_id=7)  # type: ignore[arg-type]


def test_error_mapping_by_sqlstate() -> None:
    conflict = mapped("PF001", "expected version 3, found version 5")
    assert isinstance(conflict, VersionConflict)
    assert (conflict.portfolio_id, conflict.expected_version, conflict.found_version) == (7, 3, 5)
    assert isinstance(mapped("PF002"), InsufficientCash)
    assert isinstance(mapped("22023"), InvalidInput)
    assert isinstance(mapped("22003"), InvalidInput)  # numeric overflow is bad input too
    assert isinstance(mapped("42501"), NotPermitted)
    assert isinstance(mapped("55P03"), LockTimeout)
    assert isinstance(mapped("40P01"), TransientConflict)
    assert isinstance(mapped("57P01"), ConnectionLost)  # backend terminated
    # No SQLSTATE: the network (an OperationalError) or psycopg refusing before sending.
    assert isinstance(error_from_database(psycopg.OperationalError("socket died")), ConnectionLost)
    refused = error_from_database(psycopg.DataError("NUL character in string"))
    assert isinstance(refused, InvalidInput)
    assert not isinstance(refused, ConnectionLost)


def test_only_safe_errors_are_retryable() -> None:
    assert retry_cause(mapped("40001")) == "serialization"  # type: ignore[arg-type]
    assert retry_cause(mapped("40P01")) == "deadlock"  # type: ignore[arg-type]
    assert retry_cause(mapped("55P03")) == "lock_timeout"  # type: ignore[arg-type]
    assert retry_cause(ConnectionUnavailable("lost before sending")) == "connection"
    assert retry_cause(ConnectionUnavailable("pool waited", pool_timeout=True)) is None
    for business in ("PF001", "PF002", "PF003", "PF004", "PF005", "PF006", "22023", "42501"):
        assert retry_cause(mapped(business)) is None, business  # type: ignore[arg-type]
    assert retry_cause(InProcessLockTimeout("local")) is None
    # In flight: handled as "in doubt" by the client (resent under the same request id).
    assert retry_cause(error_from_database(psycopg.OperationalError("x"))) is None


def _ledger_sqlstates() -> list[str]:
    # read from the SQL itself, so that a new PFnnn is covered too: raised directly
    # (ERRCODE = 'PF...') or recorded as an element's refusal (f_state[i] := 'PF...')
    source = "".join(path.read_text() for path in (ROOT / "sql").glob("*.sql"))
    return sorted(set(re.findall(r"(?:ERRCODE = |_state\[i\] := )'(PF\d{3})'", source)))


LEDGER_SQLSTATES = _ledger_sqlstates()
# Errors a retry can never fix: business refusals, constraint violations, internal errors.
NEVER_RETRIED = ["23505", "23514", "23503", "23502", "22023", "22003", "42501", "XX000"]


def test_the_sql_raises_ledger_sqlstates() -> None:
    assert len(LEDGER_SQLSTATES) >= 6, LEDGER_SQLSTATES  # the scan found the PF codes


@pytest.mark.parametrize("sqlstate", NEVER_RETRIED + LEDGER_SQLSTATES)
def test_final_errors_are_never_retried(sqlstate: str) -> None:
    # Retrying a unique or check violation would repeat a refused change, or hide a bug.
    error = error_from_sqlstate(sqlstate, "refused", portfolio_id=7)
    assert retry_cause(error) is None
    assert sqlstate not in RETRYABLE_SQLSTATES


@pytest.mark.parametrize(
    ("sqlstate", "cause"),
    [("40001", "serialization"), ("40P01", "deadlock"), ("55P03", "lock_timeout")],
)
def test_transient_errors_are_retried(sqlstate: str, cause: str) -> None:
    assert retry_cause(error_from_sqlstate(sqlstate, "transient", portfolio_id=7)) == cause
    assert sqlstate in RETRYABLE_SQLSTATES


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(max_retries=10, base_delay=0.01, max_delay=0.1, rng=random.Random(1))
    assert [policy.ceiling(n) for n in range(1, 6)] == [0.01, 0.02, 0.04, 0.08, 0.1]
    delays = [policy.delay(5) for _ in range(2000)]
    assert all(0 <= d <= 0.1 for d in delays)
    assert min(delays) < 0.01 < 0.09 < max(delays)  # spread over the whole range
    assert RetryPolicy(jitter=False, base_delay=0.01).delay(2) == 0.02
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


def test_decimal_guard() -> None:
    assert as_decimal("x", 3) == Decimal(3)
    for bad in (0.1, True, "1", None, 1j):
        with pytest.raises(InvalidInput):
            as_decimal("x", bad)


def test_every_query_calls_a_function() -> None:
    assert len(QUERIES) >= 18
    for name, text in QUERIES.items():
        assert text.upper().startswith("SELECT"), name
        assert "(" in text, name
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\n-- one\nSELECT 1;\n-- name: a\n-- two\nSELECT 2;\n")


def test_histogram_quantiles_within_bucket_error() -> None:
    h = LatencyHistogram()
    for i in range(1, 10001):
        h.record(i / 1_000_000)  # 1us .. 10ms uniformly
    assert h.quantile(0.5) == pytest.approx(0.005, rel=0.03)
    assert h.quantile(0.99) == pytest.approx(0.0099, rel=0.03)
    assert h.quantile(1.0) == pytest.approx(0.01)
    assert len(h.buckets) < 1000  # fixed size, whatever the count


def test_monitor_counts_and_report(capsys: pytest.CaptureFixture[str]) -> None:
    m = Monitor()
    with m.operation("apply_fill"):
        pass
    with pytest.raises(KeyError), m.operation("apply_fill"):
        raise KeyError("x")
    m.record_lock_wait("portfolio", 0.001, contended=True)
    m.record_lock_wait("portfolio", 0.0, contended=False)
    m.record_retry("deadlock")
    m.record_version_conflict()
    snap = m.snapshot()
    assert snap["operations"]["apply_fill"]["calls"] == 2
    assert snap["operations"]["apply_fill"]["failures"] == {"KeyError": 1}
    assert snap["lock_contention_rate"] == 0.5
    assert snap["retries"] == {"deadlock": 1}
    assert snap["peak_in_flight"] == 1
    m.print_report()
    out = capsys.readouterr().out
    assert "apply_fill" in out
    assert "per-portfolio in-process lock: 50.00% of 2 acquisitions waited" in out


def test_global_monitor_report() -> None:
    """The seed's monitoring example runs as written."""
    monitor = get_global_monitor()
    monitor.print_report()
    assert get_global_monitor() is monitor


def test_prometheus_names() -> None:
    m = Monitor()
    with m.operation("deposit_cash"):
        pass
    m.record_lock_wait("portfolio", 0.002, contended=True)
    m.record_retry("lock_timeout")
    registry = CollectorRegistry()
    register(m, registry)
    text = generate_latest(registry).decode()
    for name in (
        'pgportfolio_operations_total{operation="deposit_cash",outcome="success"} 1.0',
        'pgportfolio_operation_duration_seconds_bucket{le="+Inf",operation="deposit_cash"} 1.0',
        'pgportfolio_lock_acquisitions_total{contended="true",lock="portfolio"} 1.0',
        'pgportfolio_lock_wait_seconds_count{lock="portfolio"} 1.0',
        'pgportfolio_retries_total{cause="lock_timeout"} 1.0',
        "pgportfolio_version_conflicts_total 0.0",
    ):
        assert name in text, name


async def test_async_locks_drop_when_idle_and_time_out() -> None:
    registry = AsyncLockRegistry(monitor=Monitor(), timeout=0.05)
    async with registry.hold(1):
        assert len(registry) == 1
        with pytest.raises(InProcessLockTimeout):
            async with registry.hold(1):
                pass
        async with registry.hold(2):  # other portfolios are not blocked
            pass
    assert len(registry) == 0
    assert registry.monitor.snapshot()["lock_timeouts"] == 1


async def test_async_lock_cancellation_leaks_nothing() -> None:
    registry = AsyncLockRegistry(monitor=Monitor(), timeout=None)
    entered = asyncio.Event()

    async def holder() -> None:
        async with registry.hold(1):
            entered.set()
            await asyncio.sleep(10)

    async def waiter() -> None:
        async with registry.hold(1):
            pass

    h = asyncio.create_task(holder())
    await entered.wait()
    w = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    w.cancel()
    h.cancel()
    await asyncio.gather(h, w, return_exceptions=True)
    assert len(registry) == 0
    async with asyncio.timeout(1), registry.hold(1):  # nobody holds it any more
        pass


async def test_hold_many_locks_in_sorted_order() -> None:
    registry = AsyncLockRegistry(monitor=Monitor(), timeout=1)
    order: list[int] = []

    async def both(keys: list[int]) -> None:
        async with registry.hold_many(keys):
            order.append(keys[0])
            await asyncio.sleep(0.01)

    # Opposite orders would deadlock without sorting; here both finish.
    await asyncio.wait_for(asyncio.gather(both([1, 2]), both([2, 1])), 2)
    assert len(order) == 2


async def test_monitored_lock_measures_contention() -> None:
    """The seed's MonitoredLock example."""
    monitor = Monitor()
    lock = MonitoredLock("critical_section", monitor)

    async def section() -> None:
        async with lock:
            await asyncio.sleep(0.005)

    await asyncio.gather(*(section() for _ in range(5)))
    stats = monitor.snapshot()["locks"]["critical_section"]
    assert stats["acquisitions"] == 5
    assert stats["contended"] == 4


async def test_queued_acquisitions_count_as_contended() -> None:
    """An asyncio.Lock released to a queued waiter reads as unlocked until that waiter
    runs; a newcomer then still waits behind it, and that wait is contention."""
    monitor = Monitor()
    registry = AsyncLockRegistry(monitor=monitor, timeout=5)

    async def worker() -> None:
        for _ in range(20):
            async with registry.hold(7):
                await asyncio.sleep(0.001)

    await asyncio.gather(*(worker() for _ in range(10)))
    stats = monitor.snapshot()["locks"]["portfolio"]
    assert stats["acquisitions"] == 200
    # Ten workers on one lock: all but the very first acquisitions found it busy.
    assert stats["contended"] >= 190


def test_thread_locks_serialize_per_key() -> None:
    registry = LockRegistry(monitor=Monitor(), timeout=5)
    inside = 0
    peak = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, peak
        with registry.hold(42):
            with guard:
                inside += 1
                peak = max(peak, inside)
            threading.Event().wait(0.001)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 1
    assert len(registry) == 0


def test_sync_client_is_generated_from_async() -> None:
    """The two clients cannot drift: regenerating _sync/ from _async/ changes nothing."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate_sync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_a_result_from_a_row_is_the_dataclass_built_from_it() -> None:
    """MutationResult.from_row fills the slots one by one (for speed): each value must
    land in its own field, whatever the fields' order, and every field must be set."""
    row = (
        7,
        12,
        Decimal("1000.50"),
        "ES:2027H",
        Decimal("-3"),
        Decimal("4512.25"),
        Decimal("-1.5"),
        True,
    )
    built = MutationResult.from_row(row, "req-1", recovered=True)
    assert built == MutationResult(*row, request_id="req-1", recovered=True)
    for f in dataclasses.fields(MutationResult):
        assert getattr(built, f.name) is not None, f.name
    plain = MutationResult.from_row((1, 2, Decimal(3), None, None, None, Decimal(0), False), None)
    assert plain == MutationResult(1, 2, Decimal(3), None, None, None, Decimal(0), False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.cash_balance = Decimal(0)  # type: ignore[misc]
