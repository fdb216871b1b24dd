"""Cancelled callers change nothing for the others (the client tells every caller the truth).

A hundred callers on four portfolios; about 30% of the operations are cancelled at a
random moment: still queued, in a batch waiting on the portfolio's row (another session
holds it now and then), or in a batch whose reply is in flight. Every caller that was not
cancelled was told the truth: success if and only if its request id is in the event log,
exactly once. Nothing is logged as an unretrieved future, and every portfolio verifies.

The sync client is cancelled the way a thread can be: an exception raised into the
calling thread (as KeyboardInterrupt is into the main thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from pgportfolio import (
    AsyncPortfolioClient,
    MutationResult,
    OutcomeUnknown,
    PortfolioClient,
    PortfolioError,
)
from tests.proof.conftest import SOAK

D = Decimal
CALLERS = 100
PORTFOLIOS = 4
OPERATIONS = 100_000 if SOAK else 20_000
CANCELLED_SHARE = 0.3


@dataclass
class Tally:
    """What each caller was told, by request id."""

    succeeded: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    other: dict[str, str] = field(default_factory=dict)

    def total(self) -> int:
        return len(self.succeeded) + len(self.refused) + len(self.cancelled) + len(self.other)


def _operation(rng: random.Random, pids: list[int]) -> tuple[str, int, tuple[Any, ...]]:
    pid = rng.choice(pids)
    kind = rng.random()
    if kind < 0.6:
        quantity = D(rng.choice([1, 2, 3, -1, -2]))
        return "apply_fill", pid, (f"S{rng.randrange(5)}", quantity, D("10"))
    if kind < 0.8:
        return "deposit_cash", pid, (D(rng.randrange(1, 50)),)
    # Large enough to be refused now and then (PF002): a typed error must mean "not applied".
    return "withdraw_cash", pid, (D(rng.randrange(1, 3000)),)


def _check_against_ledger(conninfo: str, pids: list[int], tally: Tally) -> None:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT request_id, count(*) FROM pgportfolio.event_log"
            " WHERE portfolio_id = ANY(%s) AND request_id IS NOT NULL GROUP BY request_id",
            (pids,),
        ).fetchall()
        logged = Counter({r[0]: int(r[1]) for r in rows})
        checks = conn.execute(
            "SELECT v.ok FROM unnest(%s::bigint[]) AS p(id),"
            " LATERAL pgportfolio.verify_portfolio(p.id) AS v",
            (pids,),
        ).fetchall()
    assert tally.other == {}, f"unexpected answers: {list(tally.other.items())[:5]}"
    assert tally.total() >= OPERATIONS
    assert len(tally.cancelled) >= OPERATIONS * CANCELLED_SHARE * 0.5
    assert tally.refused, "no refusal was exercised"
    told_wrong = [r for r in tally.succeeded if logged[r] != 1]
    assert told_wrong == [], f"told success, logged {[logged[r] for r in told_wrong[:5]]} times"
    refused_but_applied = [r for r in tally.refused if logged[r] != 0]
    assert refused_but_applied == [], f"told refused, but applied: {refused_but_applied[:5]}"
    assert all(logged[r] <= 1 for r in tally.cancelled)
    assert max(logged.values()) == 1
    assert all(ok for (ok,) in checks)


async def _hold_rows_now_and_then(conninfo: str, pids: list[int], stop: asyncio.Event) -> None:
    """Another session locks a portfolio's row for a few ms at a time, so that batches
    wait on it with callers being cancelled meanwhile."""
    rng = random.Random(7)
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        while not stop.is_set():
            async with conn.transaction():
                await conn.execute(
                    "SELECT 1 FROM pgportfolio.portfolios WHERE portfolio_id = %s FOR UPDATE",
                    (rng.choice(pids),),
                )
                await asyncio.sleep(rng.uniform(0.001, 0.01))
            await asyncio.sleep(rng.uniform(0.005, 0.03))


async def test_cancelled_callers_change_nothing_for_the_others(
    shared_db: str, proof_seed: int
) -> None:
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    tally = Tally()
    try:
        async with AsyncPortfolioClient(shared_db, min_size=4, max_size=16) as client:
            pids = [await client.create_portfolio(f"cx{n}", D("100000")) for n in range(PORTFOLIOS)]
            remaining = OPERATIONS

            async def caller(number: int) -> None:
                nonlocal remaining
                rng = random.Random(proof_seed * 1000 + number)
                while remaining > 0:
                    remaining -= 1
                    name, pid, args = _operation(rng, pids)
                    request_id = f"c{number}-{remaining}"
                    call = getattr(client, name)(pid, *args, request_id=request_id)
                    task = asyncio.ensure_future(call)
                    if rng.random() < CANCELLED_SHARE:
                        # Cancel at a random moment: before it is taken, while its batch
                        # waits on the row, or while the reply is on its way.
                        loop.call_later(rng.uniform(0, 0.004), task.cancel)
                    try:
                        await task
                    except asyncio.CancelledError:
                        tally.cancelled.add(request_id)
                        continue
                    except PortfolioError as exc:
                        if isinstance(exc, OutcomeUnknown):
                            tally.other[request_id] = repr(exc)
                        else:
                            tally.refused[request_id] = type(exc).__name__
                        continue
                    tally.succeeded.add(request_id)

            stop = asyncio.Event()
            holder = asyncio.create_task(_hold_rows_now_and_then(shared_db, pids, stop))
            await asyncio.gather(*(caller(n) for n in range(CALLERS)))
            stop.set()
            await holder
        import gc

        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert unretrieved == []
    _check_against_ledger(shared_db, pids, tally)


class _Interrupted(BaseException):
    """What a thread's caller is interrupted with, as the main thread is with
    KeyboardInterrupt."""


class _Interrupts:
    """Interrupts a calling thread while it waits for its answer, as a signal interrupts
    the main thread's blocking wait. (An exception raised into a thread at an arbitrary
    bytecode can break any Python-level lock, threading.Condition included; so the
    interruption is delivered where a real one lands: in the wait.)"""

    def __init__(self) -> None:
        self.pending: set[int] = set()
        self.guard = threading.Lock()

    def request(self, ident: int) -> None:
        with self.guard:
            self.pending.add(ident)

    def clear(self, ident: int) -> None:
        with self.guard:
            self.pending.discard(ident)

    def wait_future(self, future: Any, timeout: float | None) -> bool:
        ident = threading.get_ident()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.guard:
                if ident in self.pending:
                    self.pending.discard(ident)
                    raise _Interrupted
            step = 0.0005 if deadline is None else min(0.0005, deadline - time.monotonic())
            if future.done():
                return True
            if step <= 0:
                return False
            concurrent.futures.wait([future], timeout=step)


@pytest.mark.timeout(300)
def test_interrupted_threads_change_nothing_for_the_others(
    shared_db: str, proof_seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgportfolio._sync import compat

    interrupts = _Interrupts()
    monkeypatch.setattr(compat, "wait_future", interrupts.wait_future)
    tally = Tally()
    guard = threading.Lock()
    with PortfolioClient(shared_db, min_size=4, max_size=16) as client:
        pids = [client.create_portfolio(f"cs{n}", D("100000")) for n in range(PORTFOLIOS)]
        per_caller = OPERATIONS // CALLERS + 1

        def caller(number: int) -> None:
            rng = random.Random(proof_seed * 1000 + number)
            me = threading.get_ident()
            for n in range(per_caller):
                name, pid, args = _operation(rng, pids)
                request_id = f"s{number}-{n}"
                timer = None
                if rng.random() < CANCELLED_SHARE:
                    timer = threading.Timer(rng.uniform(0, 0.004), interrupts.request, (me,))
                    timer.start()
                try:
                    result = getattr(client, name)(pid, *args, request_id=request_id)
                except _Interrupted:
                    with guard:
                        tally.cancelled.add(request_id)
                    continue
                except PortfolioError as exc:
                    with guard:
                        if isinstance(exc, OutcomeUnknown):
                            tally.other[request_id] = repr(exc)
                        else:
                            tally.refused[request_id] = type(exc).__name__
                    continue
                finally:
                    if timer is not None:
                        timer.cancel()
                        timer.join()
                        interrupts.clear(me)  # fired too late: the call had returned
                with guard:
                    assert isinstance(result, MutationResult)
                    tally.succeeded.add(request_id)

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(f"\nsync: {tally.total()} operations in {time.monotonic() - started:.1f}s")
    _check_against_ledger(shared_db, pids, tally)
