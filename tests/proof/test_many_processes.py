"""Issue test 10: four client processes trade the same few portfolios at once.

Each process (multiprocessing, "spawn") has its own AsyncPortfolioClient: its own pool
and its own in-process locks, which serialize nothing across processes. Only the
database's row locks keep the ledger right. Two of the four coalesce their fills into
``apply_fills`` batches (the client's default), two send one call per fill. Every
process records what it sent and how each call ended to a file; the parent then runs the
chaos checker over all of them (acknowledged exactly once, rejected absent, CAS, replays,
identities, verify_portfolio) while a few client backends get killed along the way.

The negative control runs the same thing against functions without FOR UPDATE: with
in-process locks still on in every process, the checker must find lost updates.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

from pgportfolio import AsyncPortfolioClient, Monitor
from pgportfolio.servers import LocalCluster
from tests.proof.conftest import SOAK, ProofScale
from tests.support.broken_variants import install_broken_variant
from tests.support.chaos import (
    EXPECTED_KINDS,
    KNOWN_BUG_KINDS,
    FaultInjector,
    ProcessSpec,
    Recorder,
    Summary,
    check_ledger,
    create_portfolios,
    publish,
    trading_process,
)

PROCESSES = 4
PORTFOLIOS = 3
TRADERS_PER_PROCESS = 16
KILL_INTERVAL = 0.5  # a few kills, not chaos

TIMEOUT = 1500 if SOAK else 300


def _join(processes: Sequence[BaseProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("variant", [None, "no_for_update"])
async def test_many_processes(
    variant: str | None,
    fault_cluster: LocalCluster,
    proof_scale: ProofScale,
    proof_seed: int,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    dsn = fault_cluster.dsn
    if variant is not None:
        install_broken_variant(dsn, variant)
    # The control needs no soak: one lost update is enough.
    operations = proof_scale.process_operations if variant is None else 400
    async with AsyncPortfolioClient(dsn, min_size=1, max_size=2, monitor=Monitor()) as setup:
        pids = await create_portfolios(setup, PORTFOLIOS)

    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    # Half the processes coalesce their fills into apply_fills batches (the default),
    # half send one call per fill: both paths at once, on the same rows.
    specs = [
        ProcessSpec(
            i,
            dsn,
            tuple(pids),
            operations,
            TRADERS_PER_PROCESS,
            proof_seed,
            str(tmp_path),
            coalesce=i % 2 == 0,
        )
        for i in range(PROCESSES)
    ]
    processes = [
        context.Process(target=trading_process, args=(spec, barrier), name=f"trader-{i}")
        for i, spec in enumerate(specs)
    ]
    for process in processes:
        process.start()
    faults = FaultInjector(dsn, interval=KILL_INTERVAL, seed=proof_seed)
    fault_task = asyncio.create_task(faults.run())
    try:  # the event loop keeps the fault task going meanwhile
        await asyncio.to_thread(_join, processes, TIMEOUT - 30)
    finally:
        faults.stop()
        await fault_task
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * PROCESSES

    recorder = Recorder.load(spec.records for spec in specs)
    monitors = [json.loads(spec.monitor.read_text()) for spec in specs]
    report = await check_ledger(dsn, pids, recorder, monitors)
    summary = Summary(
        f"many processes: {variant or 'real functions'}",
        proof_seed,
        "soak" if proof_scale.soak else "ci",
        time.monotonic() - started,
        recorder,
        report,
        monitors,
        faults,
        extra={"processes": PROCESSES, "portfolios": len(pids), "coalescing": "2 of 4"},
    )
    publish(request, summary, f"many_processes_{variant or 'real'}")

    # They really traded at once, and every portfolio was traded by every process.
    firsts = [first for first, _ in recorder.intervals]
    lasts = [last for _, last in recorder.intervals]
    assert len(recorder.intervals) == PROCESSES
    assert max(firsts) < min(lasts), f"the processes did not overlap: {recorder.intervals}"
    writers = {
        pid: {
            r.request_id.split("-")[0]
            for r in recorder.requests.values()
            if r.portfolio_id == pid and r.outcome == "acknowledged"
        }
        for pid in pids
    }
    assert all(len(w) == PROCESSES for w in writers.values()), writers

    if variant is None:
        assert report.without(*KNOWN_BUG_KINDS) == [], report.describe()
        assert recorder.outcomes()["acknowledged"] > PROCESSES * operations // 2
    else:
        found = report.kinds() & EXPECTED_KINDS[variant]
        assert found, f"{variant}: the checker found nothing across processes:\n" + (
            report.describe()
        )
