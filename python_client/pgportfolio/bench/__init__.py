"""``pgportfolio bench``: throughput and latency of the ledger, measured against its own bounds.

Every scenario is measured in one run, on one database made for the run: the client as
shipped (async, coalescing on), the client sending one ``apply_fill`` per call, and
pgbench driving the SQL functions directly (``apply_fill`` one per transaction, and
``apply_fills`` with the same batch size). pgbench's numbers are the database's bounds on
this machine, so a missed target can be placed on the side of the client or the server.

With no DSN a throwaway server is started (as ``pgportfolio demo`` does). With a DSN (a
superuser's), a database ``pgportfolio_bench_<hex>`` is created on that server, migrated,
and dropped at the end. Nothing is simulated: a variant that fails shows as an error.

The modules, each importing only those below it: command (the run); scenarios (the
registry: each scenario's body and targets) and report (tables, JSON, chart); harness
(measuring a variant) and targets; database and results; measure and pgbench; fills and
settings.
"""

from pgportfolio.bench.command import EXIT_TARGET_MISSED, exit_status, run_bench
from pgportfolio.bench.measure import percentile, ratio
from pgportfolio.bench.pgbench import (
    apply_fill_script,
    apply_fills_script,
    parse_pgbench_log,
    parse_pgbench_summary,
)
from pgportfolio.bench.report import print_results
from pgportfolio.bench.results import ReadResult, ScenarioResult, VariantResult
from pgportfolio.bench.scenarios import build_targets, default_scenarios, parse_scenarios
from pgportfolio.bench.settings import FULL, QUICK, BenchSettings, Sizes
from pgportfolio.bench.targets import Target, TargetOutcome, evaluate

__all__ = [
    "EXIT_TARGET_MISSED",
    "FULL",
    "QUICK",
    "BenchSettings",
    "ReadResult",
    "ScenarioResult",
    "Sizes",
    "Target",
    "TargetOutcome",
    "VariantResult",
    "apply_fill_script",
    "apply_fills_script",
    "build_targets",
    "default_scenarios",
    "evaluate",
    "exit_status",
    "parse_pgbench_log",
    "parse_pgbench_summary",
    "parse_scenarios",
    "percentile",
    "print_results",
    "ratio",
    "run_bench",
]
