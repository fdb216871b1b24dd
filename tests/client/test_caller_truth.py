"""Every caller learns the truth about its own operation.

A batch, once taken from the coalescing queue, belongs to the client: cancelling the
caller whose call happened to start it must not change what the other callers of the
batch are told. An unknown outcome names the request it is about, so that the caller
can ask ``find_request``. Opening a client on a wrong address fails within its timeout
with libpq's own words. Giving up on calls leaves no internal future unretrieved.
"""

from __future__ import annotations

import asyncio
import gc
import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgportfolio import (
    AsyncPortfolioClient,
    ConnectionUnavailable,
    MutationResult,
    OutcomeUnknown,
    PortfolioClient,
    RetryPolicy,
)
from tests.support.faultproxy import FaultProxy

D = Decimal


def _logged_request_ids(conninfo: str, portfolio_id: int) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT request_id FROM pgportfolio.event_log WHERE portfolio_id = %s",
            (portfolio_id,),
        ).fetchall()
    return [r[0] for r in rows]


def _hold_row(conninfo: str, portfolio_id: int) -> psycopg.Connection[Any]:
    """An open transaction that holds the portfolio's row lock until it ends."""
    conn = psycopg.connect(conninfo)
    conn.execute(
        "SELECT 1 FROM pgportfolio.portfolios WHERE portfolio_id = %s FOR UPDATE",
        (portfolio_id,),
    )
    return conn


async def test_cancelling_the_caller_that_started_a_batch_leaves_the_others_their_answers(
    shared_db: str,
) -> None:
    """A batch of ten waits on the portfolio's row; the caller whose call started the batch
    is cancelled. The other nine get their own results, each in the log exactly once."""
    async with AsyncPortfolioClient(
        shared_db, min_size=2, max_size=4, max_combiners=1, retry=RetryPolicy(base_delay=0.001)
    ) as client:
        blocker = await client.create_portfolio("blocker", D("1000"))
        target = await client.create_portfolio("target", D("1000"))
        first_hold = _hold_row(shared_db, blocker)
        second_hold = _hold_row(shared_db, target)
        try:
            # The only turn is taken by a fill that waits on the blocker's row ...
            lone = asyncio.create_task(client.apply_fill(blocker, "B", D("1"), D("1")))
            await asyncio.sleep(0.2)
            # ... so these ten queue, and travel together once it is done.
            ids = [f"truth-{n}" for n in range(10)]
            callers = [
                asyncio.create_task(client.apply_fill(target, "T", D("1"), D("1"), request_id=r))
                for r in ids
            ]
            await asyncio.sleep(0.2)
            first_hold.commit()
            await lone
            await asyncio.sleep(0.3)  # the batch of ten is now waiting on the target's row
            assert not any(c.done() for c in callers)
            callers[0].cancel()
            await asyncio.sleep(0.2)
            second_hold.commit()
            answers = await asyncio.gather(*callers, return_exceptions=True)
        finally:
            first_hold.close()
            second_hold.close()
    assert isinstance(answers[0], asyncio.CancelledError)
    logged = _logged_request_ids(shared_db, target)
    for request_id, answer in zip(ids[1:], answers[1:], strict=True):
        assert isinstance(answer, MutationResult), f"{request_id} was told {answer!r}"
        assert logged.count(request_id) == 1
    assert all(c.ok for c in _verified(shared_db, target))


def _verified(conninfo: str, portfolio_id: int) -> list[Any]:
    with PortfolioClient(conninfo, min_size=1, max_size=1) as client:
        return client.verify_portfolio(portfolio_id)


class _DarkAfterDrop(FaultProxy):
    """Once the marked message has passed (its reply will be thrown away), every new
    connection is refused: the server is unreachable, so the outcome of the lost call
    cannot be learnt."""

    armed = False

    def drop_reply_after(self, marker: bytes) -> None:
        self.armed = True
        super().drop_reply_after(marker)

    def refusing(self) -> bool:
        return self.armed and self._marker is None


def _through(proxy: FaultProxy, conninfo: str) -> str:
    return make_conninfo(conninfo, host="127.0.0.1", port=str(proxy.port))


def _target(conninfo: str) -> tuple[str, int]:
    params = conninfo_to_dict(conninfo)
    return str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)


@pytest.mark.parametrize("together", [1, 3], ids=["alone", "batch"])
async def test_outcome_unknown_names_its_request(
    shared_db: str, together: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection dies with the call in flight and the server stays unreachable: each
    caller's OutcomeUnknown carries the operation, the portfolio and the request id the
    client made up, and find_request with them tells the truth afterwards."""
    with _DarkAfterDrop(*_target(shared_db)) as proxy:
        async with AsyncPortfolioClient(
            _through(proxy, shared_db),
            min_size=1,
            max_size=2,
            pool_timeout=0.5,
            resolve_timeout=1.0,
            retry=RetryPolicy(base_delay=0.05, max_delay=0.1, jitter=False),
        ) as client:
            pid = await client.create_portfolio("unknown", D("1000"))
            # Alone, a fill goes through apply_fill; queued behind it, the others travel
            # together through apply_fills: the reply to that one is lost.
            proxy.drop_reply_after(b"apply_fill" if together == 1 else b"apply_fills")

            async def fill(n: int) -> object:
                try:
                    return await client.apply_fill(pid, f"U{n}", D("1"), D("1"))
                except OutcomeUnknown as exc:
                    return exc

            answers = await asyncio.gather(*(fill(n) for n in range(together)))
            assert proxy.replies_dropped == 1
    assert all(isinstance(a, MutationResult | OutcomeUnknown) for a in answers)
    unknown = [a for a in answers if isinstance(a, OutcomeUnknown)]
    assert len(unknown) >= min(together, 2)  # the lone call, or a batch of at least two
    for answer in unknown:
        assert isinstance(answer, OutcomeUnknown)
        assert answer.operation == "apply_fill"
        assert answer.portfolio_id == pid
        assert answer.request_id
        assert answer.request_id in str(answer)
    async with AsyncPortfolioClient(shared_db, min_size=1, max_size=1) as direct:
        fates = [await direct.find_request(pid, a.request_id) for a in unknown]
    # The statement reached the server, so each one committed: find_request says so.
    assert all(f is not None for f in fates)
    # The "pgportfolio" logger said so too, at ERROR, naming each request.
    logged = [r.getMessage() for r in caplog.records if r.name == "pgportfolio"]
    errors = [
        r.getMessage() for r in caplog.records if r.name == "pgportfolio" and r.levelname == "ERROR"
    ]
    assert all(any(a.request_id in m for m in errors) for a in unknown), logged


@pytest.mark.parametrize("together", [1, 3], ids=["alone", "batch"])
async def test_an_in_doubt_call_is_not_told_refused_by_an_error_of_its_retry(
    shared_db: str, together: int
) -> None:
    """The reply to a committed call is lost; while the client resends it under the same
    request id, another session holds the portfolio's row, so every resend ends in a lock
    timeout (as it would in a read-only error on a node that is being failed over). A
    lock timeout says nothing about the lost attempt: the caller must learn that its
    outcome is unknown, never a refusal (which promises that nothing changed), and
    find_request shows the operation applied once. Found by the failover drill (two
    operations told 25006 were applied)."""
    held: list[psycopg.Connection[Any]] = []
    with FaultProxy(*_target(shared_db)) as proxy:
        async with AsyncPortfolioClient(
            _through(proxy, shared_db) + " options='-c pgportfolio.lock_timeout=100ms'",
            min_size=1,
            max_size=2,
            resolve_timeout=2.0,
            retry=RetryPolicy(max_retries=2, base_delay=0.3, max_delay=0.3, jitter=False),
        ) as client:
            pid = await client.create_portfolio("doubt", D("1000"))
            proxy.drop_reply_after(b"apply_fill" if together == 1 else b"apply_fills")

            def hold_once_dropped() -> None:
                # The lost attempt has committed when its reply is dropped; the first
                # resend comes 0.3 s later. (The proxy counts in its own threads.)
                while proxy.replies_dropped == 0:
                    time.sleep(0.001)
                held.append(_hold_row(shared_db, pid))

            async def fill(n: int) -> object:
                try:
                    return await client.apply_fill(pid, f"D{n}", D("1"), D("1"))
                except Exception as exc:
                    return exc

            holder = asyncio.create_task(asyncio.to_thread(hold_once_dropped))
            answers = await asyncio.gather(*(fill(n) for n in range(together)))
            await holder
    for conn in held:
        conn.rollback()
        conn.close()
    # A call answered before the reply was lost has its result; the lost one (alone, or
    # every call of the batch) is unknown; none is refused.
    assert all(isinstance(a, MutationResult | OutcomeUnknown) for a in answers), answers
    unknown = [a for a in answers if isinstance(a, OutcomeUnknown)]
    assert unknown, answers
    async with AsyncPortfolioClient(shared_db, min_size=1, max_size=1) as direct:
        for answer in unknown:
            assert isinstance(answer, OutcomeUnknown)
            assert answer.request_id is not None
            assert await direct.find_request(pid, answer.request_id) is not None


def _bad_role(conninfo: str) -> str:
    return make_conninfo(conninfo, user="no_such_role_pgportfolio")


def _refused_port(conninfo: str) -> str:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        return make_conninfo(conninfo, host="127.0.0.1", port=str(port))


@pytest.mark.parametrize(
    ("make_dsn", "cause"),
    [(_bad_role, "no_such_role_pgportfolio"), (_refused_port, "refused")],
    ids=["unknown-role", "refused-port"],
)
async def test_wrong_dsn_fails_within_the_timeout_with_libpq_words(
    shared_db: str, make_dsn: Any, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionUnavailable) as info:
        async with AsyncPortfolioClient(make_dsn(shared_db), pool_timeout=3):
            pass
    assert time.monotonic() - started < 4
    assert cause in str(info.value).lower()
    assert not [r for r in caplog.records if r.name.startswith("psycopg.pool")]


@pytest.mark.parametrize(
    ("make_dsn", "cause"),
    [(_bad_role, "no_such_role_pgportfolio"), (_refused_port, "refused")],
    ids=["unknown-role", "refused-port"],
)
def test_wrong_dsn_fails_within_the_timeout_sync(shared_db: str, make_dsn: Any, cause: str) -> None:
    started = time.monotonic()
    with (
        pytest.raises(ConnectionUnavailable) as info,
        PortfolioClient(make_dsn(shared_db), pool_timeout=3),
    ):
        pass
    assert time.monotonic() - started < 4
    assert cause in str(info.value).lower()


async def test_timed_out_callers_leave_no_unretrieved_future(shared_db: str) -> None:
    """Five rounds of giving up on 50 fills after 10 ms (the portfolio's row is held, so
    none can be answered in time): nothing is logged as never retrieved."""
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    try:
        async with AsyncPortfolioClient(shared_db, min_size=2, max_size=4) as client:
            pid = await client.create_portfolio("timeouts", D("1000000"))
            hold = _hold_row(shared_db, pid)
            for _ in range(5):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.gather(
                            *(client.apply_fill(pid, "TO", D("1"), D("1")) for _ in range(50))
                        ),
                        0.01,
                    )
            hold.close()
            await asyncio.sleep(0.5)
            assert all(c.ok for c in await client.verify_portfolio(pid))
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert unretrieved == []


async def test_a_refusal_reads_the_same_alone_and_in_a_batch(shared_db: str) -> None:
    """The same refusal has the same class, SQLSTATE, message, detail and hint whether
    its call went alone or in an apply_fills batch; messages use the client's names."""
    from pgportfolio import Fill, InsufficientCash, PortfolioError

    async with (
        AsyncPortfolioClient(shared_db, min_size=1, max_size=2, coalesce=False) as alone,
        AsyncPortfolioClient(shared_db, min_size=1, max_size=2) as batched,
    ):
        pid = await alone.create_portfolio("same words", D("100"))
        cases: list[tuple[str, D, D, int | None]] = [
            ("CASH", D("1"), D("100.5"), None),  # short by half a unit of cash: PF002
            ("NAN", D("NaN"), D("1"), None),  # 22023 with a DETAIL
            ("DEC", D("0.123456789"), D("1"), None),  # 22023 with a HINT
            ("CAS", D("1"), D("1"), 99),  # PF001
        ]

        def shape(exc: PortfolioError) -> tuple[object, ...]:
            return (type(exc), exc.sqlstate, str(exc), exc.detail, exc.hint, exc.portfolio_id)

        singles = []
        for symbol, quantity, price, expected in cases:
            with pytest.raises(PortfolioError) as info:
                await alone.apply_fill(pid, symbol, quantity, price, expected_version=expected)
            singles.append(info.value)
        conflict = await asyncio.gather(
            *(batched.apply_fill(pid, "CAS", D("1"), D("1"), expected_version=v) for v in (99, 99)),
            return_exceptions=True,
        )
        fills = [(pid, Fill(s, q, p)) for s, q, p, _ in cases[:3]]
        answers = await batched.apply_fills([*fills, (pid, Fill("OK", D("1"), D("1")))])
    in_batch = [*answers[:3], conflict[0]]
    assert all(isinstance(a, PortfolioError) for a in in_batch)
    assert [shape(a) for a in in_batch] == [shape(e) for e in singles]  # type: ignore[arg-type]
    assert isinstance(answers[3], MutationResult)  # its neighbours' refusals changed nothing for it
    cash = singles[0]
    assert isinstance(cash, InsufficientCash)
    assert (cash.needed, cash.available) == (D("100.5"), D("100"))
    assert str(singles[1]).startswith("quantity must")  # not p_quantity


def test_a_float_is_refused_with_a_hint_naming_what_is_accepted() -> None:
    from pgportfolio import InvalidInput
    from pgportfolio.values import as_decimal

    with pytest.raises(InvalidInput) as info:
        as_decimal("price", 1.1)
    assert info.value.hint is not None
    assert "Decimal('1.1')" in info.value.hint
    assert "int" in info.value.hint
