"""Issue test 1 (chaos ledger) and issue test 2 (negative controls of its checker).

Test 1: ``chaos_traders`` traders share one AsyncPortfolioClient (defaults: in-process
locks on, fills coalesced into apply_fills batches) on ``chaos_portfolios`` portfolios of
a throwaway cluster, sending every kind of mutation, price ticks, compare-and-set calls,
two-fill transactions and replays of old request ids, while a fault task kills a random
client backend every ``kill_interval`` and restarts the server once (immediate mode,
crash recovery) half-way through. Afterwards the checker of ``chaos.py`` reads the
database and compares it with what every trader was told.

Test 2: the same checker on the same workload (without faults, without the in-process
locks, one call per fill, more same-portfolio pressure) against deliberately broken
copies of the ledger's functions must find problems of the expected kind, and against
the real functions none: the runs differ only in the function. Beyond those, one fault
is planted per rule of the checker (test_checker_rules_can_fail): every rule can fail.

A lost reply to a reused request id (changed arguments) must come back as
RequestIdReused, never as applied: test_lost_reply_to_reused_request_id_is_refused.

Replay: PGPORTFOLIO_SEED=<seed printed by the run>. Full size: PGPORTFOLIO_SOAK=1.
PGPORTFOLIO_PROOF_SUMMARY_DIR=<dir> also writes each summary there (json and text).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgportfolio import (
    AsyncPortfolioClient,
    Monitor,
    MutationResult,
    RequestIdReused,
    RetryPolicy,
)
from pgportfolio.servers import LocalCluster
from tests.proof.conftest import SOAK, ProofScale
from tests.support.broken_variants import install_broken_variant
from tests.support.chaos import (
    CONTROL_MIX,
    EXPECTED_KINDS,
    INVARIANTS,
    KNOWN_BUG_KINDS,
    CheckReport,
    FaultInjector,
    Recorder,
    Replay,
    Request,
    Summary,
    Workload,
    WorkloadConfig,
    check_ledger,
    create_portfolios,
    publish,
)
from tests.support.faultproxy import FaultProxy

D = Decimal

CHAOS_TIMEOUT = 1500 if SOAK else 300


def _client(
    conninfo: str,
    monitor: Monitor,
    *,
    name: str,
    max_retries: int = 8,
    process_locks: bool = True,
    coalesce: bool = True,
) -> AsyncPortfolioClient:
    return AsyncPortfolioClient(
        conninfo,
        min_size=4,
        max_size=20,
        pool_timeout=15.0,
        retry=RetryPolicy(max_retries=max_retries, base_delay=0.005, max_delay=0.5),
        monitor=monitor,
        lock_timeout=60.0,
        resolve_timeout=30.0,
        process_locks=process_locks,
        coalesce=coalesce,
        name=name,
    )


@pytest.mark.timeout(CHAOS_TIMEOUT)
async def test_chaos_ledger(
    fault_cluster: LocalCluster,
    proof_scale: ProofScale,
    proof_seed: int,
    request: pytest.FixtureRequest,
) -> None:
    scale = proof_scale
    monitor = Monitor()
    recorder = Recorder()
    started = time.monotonic()
    async with _client(fault_cluster.dsn, monitor, name="chaos") as client:
        pids = await create_portfolios(client, scale.chaos_portfolios)
        workload = Workload(
            client,
            WorkloadConfig(
                operations=scale.chaos_operations,
                traders=scale.chaos_traders,
                portfolio_ids=pids,
                seed=proof_seed,
                pair_conninfo=fault_cluster.dsn,
            ),
            recorder,
        )
        faults = FaultInjector(
            fault_cluster.dsn,
            interval=scale.kill_interval,
            seed=proof_seed,
            cluster=fault_cluster,
            restart_when=lambda: workload.issued >= scale.chaos_operations // 2,
        )
        fault_task = asyncio.create_task(faults.run())
        try:
            await workload.run()
        finally:
            faults.stop()
            await fault_task
    report = await check_ledger(fault_cluster.dsn, pids, recorder, [monitor.snapshot()])
    summary = Summary(
        "chaos ledger",
        proof_seed,
        "soak" if scale.soak else "ci",
        time.monotonic() - started,
        recorder,
        report,
        [monitor.snapshot()],
        faults,
        extra={"portfolios": len(pids), "traders": scale.chaos_traders},
    )
    publish(request, summary, "chaos_summary")

    assert report.without(*KNOWN_BUG_KINDS) == [], report.describe()
    # The run really was chaotic, and really exercised what the checker checks.
    assert faults.restarts == 1
    assert faults.kills > 0
    # Some kills hit a request in flight: resolved by request id (read back, or found
    # not applied and sent again under the same id).
    figures = summary.figures()
    assert figures["recovered"] + figures["retries"].get("connection_lost", 0) > 0, figures
    _assert_coverage(recorder, report, scale.chaos_operations)
    await _assert_mix(fault_cluster.dsn, pids)


async def _assert_mix(conninfo: str, pids: list[int]) -> None:
    """The run had fills at a multiplier other than 1, and fills with each kind of
    execution metadata, applied (so the checks above covered them)."""
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE multiplier <> 1), count(*) FILTER (WHERE order_id"
            " IS NOT NULL), count(*) FILTER (WHERE tags IS NOT NULL), count(*) FILTER (WHERE"
            " executed_at <> created_at), count(*) FILTER (WHERE executed_at = created_at)"
            " FROM pgportfolio.event_log WHERE portfolio_id = ANY(%s) AND symbol IS NOT NULL",
            (pids,),
        )
        row = await cur.fetchone()
    assert row is not None
    assert all(n > 0 for n in row), row


def _assert_coverage(
    recorder: Recorder, report: CheckReport, operations: int, *, cas_acknowledged: bool = True
) -> None:
    figures = Summary("", 0, "", 1.0, recorder, report, []).figures()
    assert figures["operations"] >= operations
    assert set(report.event_kinds) >= {
        "create",
        "deposit",
        "withdraw",
        "fee",
        "open",
        "add",
        "reduce",
        "close",
        "flip",
    }, report.event_kinds
    outcomes = figures["outcomes"]
    assert outcomes.get("acknowledged", 0) > operations // 2, outcomes
    assert outcomes.get("rejected", 0) > 0, outcomes
    assert figures["duplicates_returned"] > 0
    assert figures["request_id_reused_refused"] > 0
    if cas_acknowledged:  # under the controls' pressure a version read is always stale
        assert figures["cas"]["acknowledged"] > 0
    assert figures["cas"]["version_conflicts"] > 0
    assert figures["pairs"] > 0


# --- a lost reply to a reused request id, pinned deterministically ---


@pytest.mark.parametrize("operation", ["deposit_cash", "apply_fill"])
async def test_lost_reply_to_reused_request_id_is_refused(db: str, operation: str) -> None:
    """deposit_cash goes through the single-call path, apply_fill through the coalesced
    apply_fills batch (the client's default): both resolve a lost reply by request id."""
    params = conninfo_to_dict(db)
    target = (str(params.get("host", "127.0.0.1")), int(str(params.get("port", 5432))))
    with FaultProxy(*target) as proxy:
        async with AsyncPortfolioClient(
            make_conninfo(db, host="127.0.0.1", port=str(proxy.port)),
            min_size=1,
            max_size=2,
            monitor=Monitor(),
            retry=RetryPolicy(base_delay=0.001),
        ) as client:
            pid = await client.create_portfolio("reused id", D("1000"))

            async def call(amount: Decimal) -> MutationResult:
                if operation == "deposit_cash":
                    return await client.deposit_cash(pid, amount, request_id="req-1")
                return await client.apply_fill(pid, "AAA", amount, D("1"), request_id="req-1")

            first = await call(D("10"))
            assert first.portfolio_version == 2
            with pytest.raises(RequestIdReused):  # without a fault: refused, as documented
                await call(D("99"))
            proxy.drop_reply_after(operation.encode())
            try:
                await call(D("99"))  # the same call, its reply lost
            except RequestIdReused:
                pass
            else:
                pytest.fail("a call refused with PF005 was reported as applied")
            finally:
                assert proxy.replies_dropped == 1


# --- issue test 2: negative controls ------------------------------------------------------

CONTROL_SYMBOLS = ("AAA", "BBB")
CONTROL_PORTFOLIOS = 2
CONTROL_TRADERS = 40
CONTROL_RETRIES = 3


async def _fast_deadlock_detection(conninfo: str) -> None:
    """Detect deadlocks after 20 ms instead of 1 s in this database (every control
    alike), so that the reversed lock order costs seconds, not minutes."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("ALTER DATABASE {} SET deadlock_timeout = '20ms'").format(
                sql.Identifier(conn.info.dbname)
            )
        )


async def run_control(
    conninfo: str, seed: int, operations: int
) -> tuple[CheckReport, Summary, list[int]]:
    """The no-fault workload with process_locks=False: many same-portfolio calls at once."""
    monitor = Monitor()
    recorder = Recorder()
    started = time.monotonic()
    # coalesce=False: every fill goes through the function a variant breaks
    # (_execute_fill), not through the apply_fills batch, which no variant touches.
    async with _client(
        conninfo,
        monitor,
        max_retries=CONTROL_RETRIES,
        process_locks=False,
        coalesce=False,
        name="control",
    ) as client:
        pids = await create_portfolios(client, CONTROL_PORTFOLIOS, symbols=CONTROL_SYMBOLS)
        workload = Workload(
            client,
            WorkloadConfig(
                operations=operations,
                traders=CONTROL_TRADERS,
                portfolio_ids=pids,
                seed=seed,
                symbols=CONTROL_SYMBOLS,
                mix=dict(CONTROL_MIX),
                pair_conninfo=conninfo,
                pair_slots=6,
                tag="n",
            ),
            recorder,
        )
        await workload.run()
    report = await check_ledger(conninfo, pids, recorder, [monitor.snapshot()])
    summary = Summary(
        "negative control",
        seed,
        "soak" if SOAK else "ci",
        time.monotonic() - started,
        recorder,
        report,
        [monitor.snapshot()],
    )
    return report, summary, pids


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "variant", [None, "no_for_update", "no_version_check", "lock_order_reversed"]
)
async def test_checker_negative_control(
    variant: str | None, db: str, proof_seed: int, request: pytest.FixtureRequest
) -> None:
    await _fast_deadlock_detection(db)
    if variant is not None:
        install_broken_variant(db, variant)
    operations = 1_600  # a control needs no soak: one deadlock, one lost update suffice
    report, summary, pids = await run_control(db, proof_seed, operations)
    summary.title = f"negative control: {variant or 'real functions'}"
    publish(request, summary, f"control_{variant or 'real'}")
    if variant is None:
        assert report.problems == [], report.describe()
        _assert_coverage(summary.recorder, report, operations, cas_acknowledged=False)
        await _assert_mix(db, pids)
    else:
        found = report.kinds() & EXPECTED_KINDS[variant]
        assert found, f"{variant}: the checker found nothing of {EXPECTED_KINDS[variant]}:\n" + (
            report.describe()
        )


# --- every rule of the checker can fail -------------------------------------------------

TAMPER_SQL = {
    # (expected problem kinds, SQL run on portfolio %(pid)s of a throwaway database)
    "negative_cash": (
        {"negative_cash"},
        "UPDATE pgportfolio.events SET cash_balance = -1 WHERE portfolio_id = %(pid)s"
        " AND portfolio_version = (SELECT max(portfolio_version) FROM pgportfolio.events"
        " WHERE portfolio_id = %(pid)s)",
    ),
    "stored_cash": (
        {"cash_identity", "stored_state", "verify_portfolio"},
        "UPDATE pgportfolio.portfolios SET cash_balance = cash_balance + 1"
        " WHERE portfolio_id = %(pid)s",
    ),
    "stored_basis": (
        {"realized_identity", "stored_state"},
        "UPDATE pgportfolio.positions SET cost_basis = cost_basis + 1 WHERE portfolio_id = %(pid)s",
    ),
    "event_cash": (
        {"event_chain"},
        "UPDATE pgportfolio.events SET cash_balance = cash_balance + 1"
        " WHERE portfolio_id = %(pid)s AND portfolio_version = 2",
    ),
    "event_pnl": (
        {"event_model"},
        "UPDATE pgportfolio.events SET realized_pnl = realized_pnl + 0.01"
        " WHERE portfolio_id = %(pid)s AND portfolio_version = (SELECT min(portfolio_version)"
        " FROM pgportfolio.events WHERE portfolio_id = %(pid)s AND symbol IS NOT NULL)",
    ),
    "event_multiplier": (
        {"event_model"},
        "UPDATE pgportfolio.events SET multiplier = multiplier + 1"
        " WHERE portfolio_id = %(pid)s AND portfolio_version = (SELECT min(portfolio_version)"
        " FROM pgportfolio.events WHERE portfolio_id = %(pid)s AND symbol IS NOT NULL)",
    ),
    "event_order_id": (
        {"ack_mismatch"},
        "UPDATE pgportfolio.events SET order_id = coalesce(order_id, '') || 'x'"
        " WHERE portfolio_id = %(pid)s AND portfolio_version = (SELECT min(portfolio_version)"
        " FROM pgportfolio.events WHERE portfolio_id = %(pid)s AND symbol IS NOT NULL)",
    ),
    "intruder": (
        {"foreign_event"},
        "INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation,"
        " amount, cash_delta, cash_balance, request_id, acting_role, chain_hash)"
        " SELECT portfolio_id, portfolio_version + 1, 'deposit', 'deposit_cash', 1, 1,"
        " cash_balance + 1, 'intruder', acting_role, chain_hash FROM pgportfolio.events"
        " WHERE portfolio_id = %(pid)s ORDER BY portfolio_version DESC LIMIT 1",
    ),
    "twice": (
        {"unknown_duplicated"},
        "INSERT INTO pgportfolio.events (portfolio_id, portfolio_version, kind, operation,"
        " amount, cash_delta, cash_balance, request_id, acting_role, chain_hash)"
        " SELECT e.portfolio_id, m.v + 1, e.kind, e.operation, e.amount, e.cash_delta,"
        " e.cash_balance, e.request_id, e.acting_role, e.chain_hash"
        " FROM pgportfolio.events AS e, (SELECT max(portfolio_version) AS v"
        " FROM pgportfolio.events WHERE portfolio_id = %(pid)s) AS m"
        " WHERE e.portfolio_id = %(pid)s AND e.request_id = %(rid)s",
    ),
}


def _recorder_tampers(
    recorder: Recorder, pid: int
) -> dict[str, tuple[set[str], Recorder, list[dict[str, object]]]]:
    """Plant one fault per rule in copies of what the traders were told."""
    tampers: dict[str, tuple[set[str], Recorder, list[dict[str, object]]]] = {}

    def fresh() -> Recorder:
        part = recorder.only(pid)
        part.replays = []  # each copy plants exactly one fault
        return part

    def acked(part: Recorder, operation: str | None = None) -> Request:
        return next(
            r
            for r in part.requests.values()
            if r.outcome == "acknowledged"
            and r.group is None
            and r.ack is not None
            and r.ack.portfolio_version > 3
            and (operation is None or r.operation == operation)
        )

    part = fresh()
    ghost = dataclasses.replace(acked(part), request_id="ghost")
    part.begin(ghost)
    tampers["ack_missing"] = ({"ack_missing"}, part, [])

    part = fresh()
    r = acked(part)
    assert r.ack is not None
    r.ack = dataclasses.replace(r.ack, cash_balance=r.ack.cash_balance + D("0.01"))
    tampers["ack_mismatch"] = ({"ack_mismatch"}, part, [])

    part = fresh()
    acked(part).outcome = "rejected"
    tampers["rejected_present"] = ({"rejected_present"}, part, [])

    part = fresh()
    r = acked(part)
    assert r.ack is not None
    r.ack = dataclasses.replace(r.ack, duplicate=True)
    tampers["spurious_duplicate"] = ({"spurious_duplicate"}, part, [])

    part = fresh()
    r = acked(part)
    assert r.ack is not None
    r.expected_version, r.cas = r.ack.portfolio_version - 2, "current"
    tampers["cas"] = ({"cas"}, part, [])

    part = fresh()
    r = acked(part)
    assert r.ack is not None
    r.expected_version, r.cas = r.ack.portfolio_version - 1, "stale"
    tampers["stale_cas"] = ({"cas"}, part, [])

    part = fresh()
    r = acked(part)
    assert r.ack is not None
    wrong = dataclasses.replace(r.ack, duplicate=True, cash_balance=r.ack.cash_balance + 1)
    part.replays = [Replay(r.request_id, pid, True, None, "acknowledged", ack=wrong)]
    tampers["replay_same"] = ({"replay"}, part, [])

    part = fresh()
    part.replays = [
        Replay(acked(part).request_id, pid, False, None, "rejected", "InsufficientCash", "PF002")
    ]
    tampers["replay_changed"] = ({"replay"}, part, [])

    part = fresh()
    r = acked(part)
    assert r.ack is not None
    recovered = dataclasses.replace(r.ack, duplicate=True, recovered=True)
    part.replays = [Replay(r.request_id, pid, False, None, "acknowledged", ack=recovered)]
    tampers["replay_changed_recovered"] = ({"replay_changed_recovered"}, part, [])

    part = fresh()
    r = acked(part, "deposit_cash")
    lonely = dataclasses.replace(r, request_id="lonely", outcome="rejected", ack=None)
    lonely.error = "InsufficientCash"
    r.group = lonely.group = "pair-x"
    part.begin(lonely)
    tampers["atomicity"] = ({"atomicity"}, part, [])

    part = fresh()
    tampers["deadlock"] = ({"deadlock"}, part, [{"retries": {"deadlock": 1}}])

    part = fresh()
    broken = dataclasses.replace(acked(part), request_id="broken", outcome="not_applied")
    broken.ack, broken.error, broken.sqlstate = None, "DatabaseError", "23505"
    part.begin(broken)
    tampers["unexpected_error"] = ({"unexpected_error"}, part, [])
    return tampers


async def test_checker_rules_can_fail(db: str, proof_seed: int) -> None:
    """A clean run checks clean; then one fault is planted per rule (in the database,
    whose append-only guard is lifted in this throwaway copy, or in what the traders
    were told), and each must be reported as its own kind."""
    monitor = Monitor()
    recorder = Recorder()
    async with _client(db, monitor, name="tamper") as client:
        pids = await create_portfolios(client, len(TAMPER_SQL) + 1)
        config = WorkloadConfig(
            operations=1_200, traders=16, portfolio_ids=pids, seed=proof_seed, pair_conninfo=db
        )
        await Workload(client, config, recorder).run()
    clean = await check_ledger(db, pids, recorder, [monitor.snapshot()])
    assert clean.problems == [], clean.describe()
    assert len(clean.kinds()) == 0

    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        # Only the append-only guard: the hash-chain trigger still fills chain_hash in.
        await conn.execute("ALTER TABLE pgportfolio.events DISABLE TRIGGER events_append_only")
        await conn.execute("ALTER TABLE pgportfolio.events DROP CONSTRAINT events_request_id_key")
        await conn.execute(
            "ALTER DOMAIN pgportfolio.non_negative_number DROP CONSTRAINT non_negative_number_check"
        )
        cur = await conn.execute(
            "SELECT DISTINCT portfolio_id FROM pgportfolio.positions WHERE portfolio_id = ANY(%s)",
            (pids,),
        )
        with_positions = [int(r[0]) for r in await cur.fetchall()]
        basis_pid = with_positions[0]
        free = [p for p in pids if p != basis_pid]
        assignment = {"stored_basis": basis_pid}
        for name in TAMPER_SQL:
            if name != "stored_basis":
                assignment[name] = free.pop(0)
        recorder_pid = free.pop(0)
        twice = recorder.only(assignment["twice"])
        doubled = next(
            r
            for r in twice.requests.values()
            if r.outcome == "acknowledged" and r.operation in ("deposit_cash", "withdraw_cash")
        )
        doubled.outcome, doubled.ack = "unknown", None
        for name, (_, statement) in TAMPER_SQL.items():
            await conn.execute(statement, {"pid": assignment[name], "rid": doubled.request_id})

    missed: dict[str, tuple[set[str], set[str]]] = {}
    for name, (expected, _) in TAMPER_SQL.items():
        pid = assignment[name]
        part = twice if name == "twice" else recorder.only(pid)
        kinds = (await check_ledger(db, [pid], part, exclusive=False)).kinds()
        if not expected <= kinds:
            missed[name] = (expected, kinds)
    for name, (expected, part, monitors) in _recorder_tampers(recorder, recorder_pid).items():
        kinds = (await check_ledger(db, [recorder_pid], part, monitors, exclusive=False)).kinds()
        if kinds != expected:  # exactly the rule planted, nothing else
            missed[name] = (expected, kinds)
    assert missed == {}, missed
    covered = {k for expected, _ in TAMPER_SQL.values() for k in expected} | {
        k for expected, _, _ in _recorder_tampers(recorder, recorder_pid).values() for k in expected
    }
    assert covered == set(INVARIANTS), set(INVARIANTS) - covered
