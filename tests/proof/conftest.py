"""Fixtures for the proof suite (issue: proof under concurrency, faults and bad input).

Sizes: the CI run uses the short, seeded form; ``make soak`` sets PGPORTFOLIO_SOAK=1
for the full one. Seeds: PGPORTFOLIO_SEED fixes the seed; otherwise one is drawn and
printed, so any failure can be replayed.

Tests that kill backends or restart the server get their own throwaway cluster from
the local binaries (``fault_cluster``), never the server named by PGPORTFOLIO_TEST_DSN,
which others may be using.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pgportfolio.migrate import migrate
from pgportfolio.servers import LocalCluster, find_local_bindir, local_cluster

SOAK = os.environ.get("PGPORTFOLIO_SOAK") == "1"


@dataclass(frozen=True)
class ProofScale:
    """How big each proof runs. CI: seconds each. Soak: the full figures of the issue."""

    soak: bool
    chaos_operations: int
    chaos_traders: int
    chaos_portfolios: int
    kill_interval: float
    memory_operations: int
    hypothesis_examples: int
    model_examples: int
    process_operations: int


CI_SCALE = ProofScale(
    soak=False,
    chaos_operations=6_000,
    chaos_traders=100,
    chaos_portfolios=8,
    kill_interval=0.1,
    memory_operations=30_000,
    hypothesis_examples=60,
    model_examples=25,
    process_operations=2_000,
)
SOAK_SCALE = ProofScale(
    soak=True,
    chaos_operations=100_000,
    chaos_traders=100,
    chaos_portfolios=8,
    kill_interval=0.1,
    memory_operations=1_000_000,
    hypothesis_examples=2_000,
    model_examples=500,
    process_operations=25_000,
)


@pytest.fixture(scope="session")
def proof_scale() -> ProofScale:
    return SOAK_SCALE if SOAK else CI_SCALE


@pytest.fixture
def proof_seed(request: pytest.FixtureRequest) -> int:
    """A seed for this test, printed (and recorded in the junit properties) for replay."""
    seed = int(os.environ.get("PGPORTFOLIO_SEED", random.SystemRandom().randrange(2**31)))
    print(f"\n[{request.node.nodeid}] seed={seed} (replay: PGPORTFOLIO_SEED={seed})")
    request.node.user_properties.append(("seed", seed))
    return seed


@pytest.fixture
def fault_cluster() -> Iterator[LocalCluster]:
    """A throwaway cluster of our own, migrated, for tests that kill or restart it.
    Its ``dsn`` is a superuser DSN to the migrated ``postgres`` database."""
    if find_local_bindir() is None:
        pytest.skip("no local PostgreSQL binaries: fault tests need a server of their own")
    with local_cluster(settings={"max_connections": "300"}) as cluster:
        migrate(cluster.dsn)
        yield cluster
