"""``pgportfolio bench``: a short run of the command itself, and its arithmetic on fake numbers.

The run checks that every selected scenario and variant produced numbers and that the
tables were printed; it asserts no performance target (that is what the bench reports).
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from rich.console import Console

import pgportfolio.bench
from pgportfolio.bench import (
    EXIT_TARGET_MISSED,
    FULL,
    QUICK,
    ReadResult,
    ScenarioResult,
    Target,
    TargetOutcome,
    VariantResult,
    apply_fill_script,
    apply_fills_script,
    build_targets,
    default_scenarios,
    evaluate,
    exit_status,
    parse_pgbench_log,
    parse_pgbench_summary,
    parse_scenarios,
    percentile,
    print_results,
    ratio,
    scenarios,
)
from pgportfolio.bench.harness import Bench
from pgportfolio.bench.settings import BenchSettings
from pgportfolio.bench.targets import TargetSpec, ratio_value
from pgportfolio.cli import main
from pgportfolio.eventloop import describe_loop, resolve_loop
from pgportfolio.monitor import LatencyHistogram

# --- the command --------------------------------------------------------------------------

VARIANTS = {
    "hot": {"client", "client_per_call", "pgbench_apply_fill", "pgbench_apply_fills"},
    "uncontended": {"client", "client_per_call", "pgbench_apply_fill"},
}


@pytest.mark.timeout(120)
def test_quick_run_measures_every_selected_variant(
    admin_conninfo: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--quick",
            "--scenarios",
            "uncontended,hot",
            "--dsn",
            admin_conninfo,
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads(out.read_text())

    assert list(report["scenarios"]) == ["hot", "uncontended"]  # canonical order
    for name, expected in VARIANTS.items():
        scenario = report["scenarios"][name]
        assert scenario["error"] is None
        assert set(scenario["variants"]) == expected
        for variant in scenario["variants"].values():
            assert variant["error"] is None, variant
            for key in ("fills", "fills_per_second", "p50_ms", "p99_ms", "p999_ms", "samples"):
                assert variant[key] > 0, (name, variant["name"], key)
            assert variant["p50_ms"] <= variant["p99_ms"] <= variant["p999_ms"]
            assert variant["client_cpu"] > 0
    hot = report["scenarios"]["hot"]
    assert hot["variants"]["client"]["mean_batch"] >= 1
    assert all(hot["ratios"][k] > 0 for k in ("a_over_b", "a_over_c", "a_over_d"))

    targets = {(t["scenario"], t["name"]): t for t in report["targets"]}
    assert {s for s, _ in targets} == {"hot", "uncontended"}
    assert all(t["status"] in ("PASS", "MISS") for t in targets.values())  # measured, not ERROR
    assert report["machine"]["nproc"] >= 1
    assert report["server"]["version"].startswith("PostgreSQL")
    loop = report["settings"]["event_loop"]  # auto: uvloop, which the dev extra installs
    assert loop == describe_loop(resolve_loop("auto")), loop
    assert f"event loop {loop};" in printed

    for title in ("hot: 1 portfolio", "uncontended: one caller", "targets", "fills/s", "p99.9"):
        assert title in printed
    assert re.search(r"\(d\) pgbench apply_fills x50", printed)
    assert "    p99 ms = " in printed  # captured, not a terminal: key = value lines
    assert "…" not in printed  # nothing cut short

    with psycopg.connect(admin_conninfo) as conn:  # the run's database is gone
        cur = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [report["database"]])
        assert cur.fetchone() is None


def test_unknown_scenario_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--scenarios", "hot,lukewarm"]) == 2
    assert "lukewarm" in capsys.readouterr().err


# --- statistics ---------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 0.999) == 100
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.999) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="q must be"):
        percentile(values, 0)


def test_percentile_agrees_with_the_client_histogram_within_its_bucket_width() -> None:
    values = sorted(0.0001 * 1.01**i for i in range(600))  # 0.1 to 39 ms
    histogram = LatencyHistogram()
    for v in values:
        histogram.record(v)
    for q in (0.5, 0.99, 0.999):
        exact = percentile(values, q)
        assert exact <= histogram.quantile(q) <= exact * 1.021  # 2% buckets


def test_ratio_handles_missing_and_zero() -> None:
    assert ratio(50.0, 20.0) == 2.5
    assert ratio(None, 20.0) is None
    assert ratio(50.0, None) is None
    assert ratio(50.0, 0.0) is None


# --- targets ------------------------------------------------------------------------------


def test_a_throughput_target_missed_reports_how_far_short() -> None:
    outcome = evaluate(Target("hot", "(a) fills/s", ">=", 50_000, "fills/s", 12_500))
    assert outcome.status == "MISS"
    assert outcome.margin == pytest.approx(-0.75)
    assert outcome.text == "MISS by 75% (x4.00 off)"


def test_a_latency_target_missed_reports_how_far_over() -> None:
    outcome = evaluate(Target("hot", "(a) p99", "<=", 5.0, "ms", 7.0))
    assert outcome.status == "MISS"
    assert outcome.margin == pytest.approx(0.4)
    assert outcome.text == "MISS by 40% (x1.40 off)"


def test_targets_met_or_exactly_on_the_bound_pass() -> None:
    assert evaluate(Target("s", "t", "<=", 5.0, "ms", 4.0)).text == "PASS, 20% to spare"
    assert evaluate(Target("s", "t", ">=", 0.8, "x", 0.8)).status == "PASS"
    assert evaluate(Target("s", "t", "<=", 1.1, "x", 1.1)).status == "PASS"


def test_a_target_without_a_measurement_is_an_error_not_a_miss() -> None:
    for measured in (None, math.nan):
        outcome = evaluate(Target("s", "t", ">=", 1.0, "x", measured))
        assert outcome.status == "ERROR"
        assert outcome.margin is None
        assert "not measured" in outcome.text


def _variant(name: str, fills_per_second: float | None, p99_ms: float | None) -> VariantResult:
    return VariantResult(name, name, "fill call", fills_per_second=fills_per_second, p99_ms=p99_ms)


def test_build_targets_from_fake_results() -> None:
    hot = ScenarioResult("hot", "fake")
    hot.variants = {
        "client": _variant("client", 20_000, 12.0),
        "client_per_call": _variant("client_per_call", 2_000, 50.0),
        "pgbench_apply_fill": _variant("pgbench_apply_fill", 8_000, 3.0),
        "pgbench_apply_fills": VariantResult("d", "d", "txn", error="RuntimeError: boom"),
    }
    hot.ratios = {"a_over_b": 20.0, "a_over_d": None}
    soak = ScenarioResult("soak", "fake", extra={"fills": 1_000, "rss_growth_mb": 12.5})

    outcomes = {t.name: evaluate(t) for t in build_targets({"hot": hot, "soak": soak}, FULL)}
    assert outcomes["(a) fills/s"].status == "MISS"
    assert outcomes["(a) fills/s"].margin == pytest.approx(-0.2)
    assert outcomes["(a) p99 per fill"].text == "MISS by 20% (x1.20 off)"
    assert outcomes["(a) / (b) fills/s"].status == "PASS"
    assert outcomes["(a) / (d) fills/s"].status == "ERROR"  # (d) crashed: no number
    rss = outcomes["client RSS growth"]
    assert rss.status == "MISS"
    assert rss.margin == pytest.approx(0.25)
    assert "1,000 fills" in rss.target.note  # not the 5M the target is stated for


# --- pgbench ------------------------------------------------------------------------------


def test_parse_pgbench_log_and_summary() -> None:
    lines = [
        "0 1 1234 0 1700000000 1",
        "1 1 987 0 1700000000 5",
        "1 2 failed 0 1700000000 9",  # a failed transaction has no latency
        "",
    ]
    assert parse_pgbench_log(lines) == [0.001234, 0.000987]
    summary = (
        "number of transactions actually processed: 18081\n"
        "latency average = 0.109 ms\n"
        "tps = 18369.492886 (without initial connection time)\n"
    )
    assert parse_pgbench_summary(summary) == (18081, pytest.approx(18369.492886))
    with pytest.raises(ValueError, match="no tps"):
        parse_pgbench_summary("pgbench: error: connection refused")


def _substitute(script: str, variables: dict[str, str]) -> str:
    """What pgbench does to the SQL line in simple mode: every :name that is a variable."""
    sql_line = next(line for line in script.splitlines() if not line.startswith("\\"))
    return re.sub(
        r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)",
        lambda m: variables.get(m.group(1), m.group(0)),
        sql_line,
    )


def test_apply_fills_script_makes_valid_json_of_the_batch() -> None:
    batch = 3
    script = apply_fills_script(batch)
    names = re.findall(r"^\\set (\w+) ", script, re.MULTILINE)
    assert names == ["r"] + [f"{v}{i}" for i in range(1, batch + 1) for v in "psqc"]
    variables = {"r": "42", "client_id": "7"}
    for i in range(1, batch + 1):
        variables |= {f"p{i}": str(i), f"s{i}": str(10 + i), f"q{i}": "-5", f"c{i}": "12345"}
    sql_text = _substitute(script, variables)
    literal = sql_text.split("'")[1]
    fills = json.loads(literal)
    assert len(fills) == batch
    assert fills[0] == {
        "portfolio_id": 1,
        "symbol": "S11",
        "quantity": -5,
        "price": 123.45,
        "request_id": "pgbd7-42-1",
    }
    assert len({f["request_id"] for f in fills}) == batch
    assert sql_text.endswith("'::jsonb);")  # the cast survives: "::" is not a variable


def test_apply_fill_script_draws_the_same_fills_as_the_client() -> None:
    script = apply_fill_script()
    assert "random(1, 100) * (2 * random(0, 1) - 1)" in script  # signed, never zero
    assert "random(1000, 20000)" in script
    assert ":c::numeric * 0.01" in script


# --- options ------------------------------------------------------------------------------


def test_scenarios_parse_in_canonical_order_and_soak_needs_asking_in_quick_mode() -> None:
    assert parse_scenarios("soak,hot") == ("hot", "soak")
    assert parse_scenarios(None) == parse_scenarios("all") == ()
    with pytest.raises(ValueError, match="lukewarm"):
        parse_scenarios("lukewarm")
    assert "soak" not in default_scenarios(quick=True)
    assert default_scenarios(quick=False)[-1] == "soak"
    assert QUICK.duration <= 1
    assert FULL.soak_fills == 5_000_000


# --- the printed tables -------------------------------------------------------------------

LABELS = (
    "(a) client as shipped (coalescing)",
    "(b) client, one apply_fill per call",
    "(c) pgbench apply_fill, -c 16",
)


def _printed_results(console: Console) -> str:
    """print_results of a hot scenario (three variants, one failed) and a read, as text."""
    measured: dict[str, Any] = {
        "fills_per_second": 20_617.0,
        "p50_ms": 1.25,
        "p99_ms": 6.5,
        "p999_ms": 9.75,
        "client_cpu": 0.9,
        "cpu_us_per_fill": 21.0,
        "machine_busy": 0.97,
        "retries": 0,
        "version_conflicts": 0,
        "lock_contention_rate": 0.012,
        "mean_batch": 31.5,
    }
    hot = ScenarioResult("hot", "1 portfolio, 10,000 symbols, 100 traders")
    hot.variants = {
        "client": VariantResult("client", LABELS[0], "fill call", **measured),
        "client_per_call": VariantResult("client_per_call", LABELS[1], "fill call", **measured),
        "pgbench_apply_fill": VariantResult(
            "pgbench_apply_fill", LABELS[2], "transaction", error="PgbenchFailed: boom"
        ),
    }
    hot.variants["client"].extra = {"fills_per_second_by_round": [40_000, 42_468]}
    hot.variants["client_per_call"].extra = {"transactions": 906}
    hot.ratios = {"a_over_b": 20.0, "a_over_c": 0.75, "a_over_d": 0.5}
    hot.extra = {"setup_seconds": 1.5}
    hot.reads = {
        "portfolio_snapshot_sql_narrow": ReadResult(
            "portfolio_snapshot_sql_narrow", 10, 50, 0.41, 0.9, 0.45
        )
    }
    outcomes = [evaluate(t) for t in build_targets({"hot": hot}, FULL)]
    print_results(console, {"hot": hot}, outcomes)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_an_80_column_terminal_gets_key_value_lines_with_every_name_whole() -> None:
    printed = _printed_results(
        Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    )
    lines = printed.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in printed
    for label in LABELS:
        assert f"  {label}" in lines
    assert "    fills/s = 20,617" in lines
    assert "    p99.9 ms = 9.750" in lines
    assert "    latency of = fill call" in lines
    assert "    ERROR: PgbenchFailed: boom" in lines
    # The reads table fits in 80 columns, so it stays a table.
    assert any(re.match(r"│ portfolio_snapshot_sql_narrow +│ +10 │", line) for line in lines)
    assert "    target = (a) fills/s >= 25,000 fills/s" in lines
    # Ratios and other numbers: too many for one 80-column line, so one per line.
    assert "  a_over_c = 0.75" in lines
    assert "  client_per_call: transactions = 906" in lines
    assert "  setup_seconds = 1.50" in lines
    assert "    result = MISS by 18% (x1.21 off)" in lines


def test_output_that_is_not_a_terminal_gets_lines_however_wide() -> None:
    printed = _printed_results(Console(file=io.StringIO(), width=250))  # a pipe, a CI log
    assert "    fills/s = 20,617" in printed.splitlines()
    assert "┃" not in printed


def test_a_terminal_wide_enough_keeps_the_rich_table() -> None:
    printed = _printed_results(
        Console(file=io.StringIO(), width=250, force_terminal=True, color_system=None)
    )
    assert "fills/s =" not in printed
    line = "  a_over_b = 20.00; a_over_c = 0.75; a_over_d = 0.50; "
    assert line + "client_per_call: transactions = 906; setup_seconds = 1.50" in printed
    header = next(line for line in printed.splitlines() if "variant" in line)
    assert re.search(r"┃ variant +┃ +fills/s ┃", header), header
    for label in (*LABELS, "portfolio_snapshot_sql_narrow"):
        assert label in printed


# --- the exit status ----------------------------------------------------------------------


def _outcomes(*measured: float | None) -> list[TargetOutcome]:
    return [evaluate(Target("hot", "(a) p99", "<=", 5.0, "ms", m)) for m in measured]


def test_strict_exits_3_when_a_target_is_missed_or_not_measured() -> None:
    hot = ScenarioResult("hot", "fake", variants={"client": _variant("client", 1.0, 7.0)})
    results = {"hot": hot}
    assert exit_status(results, _outcomes(4.0, 7.0), strict=True) == EXIT_TARGET_MISSED == 3
    assert exit_status(results, _outcomes(4.0, None), strict=True) == 3
    assert exit_status(results, _outcomes(4.0, 5.0), strict=True) == 0
    assert exit_status(results, _outcomes(4.0, 7.0), strict=False) == 0  # numbers, not a verdict


def test_a_failed_variant_exits_1_strict_or_not() -> None:
    hot = ScenarioResult("hot", "fake")
    hot.variants = {"client": VariantResult("client", "a", "fill call", error="RuntimeError: x")}
    for strict in (True, False):
        assert exit_status({"hot": hot}, _outcomes(7.0), strict=strict) == 1
    failed = ScenarioResult("soak", "fake", error="RuntimeError: setup")
    assert exit_status({"soak": failed}, [], strict=False) == 1


def test_the_strict_option_reaches_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[BenchSettings] = []

    def fake_run(settings: BenchSettings) -> int:
        seen.append(settings)
        return 3 if settings.strict else 0

    monkeypatch.setattr(pgportfolio.bench, "run_bench", fake_run)
    assert main(["bench", "--quick", "--strict"]) == 3
    assert main(["bench", "--quick"]) == 0
    assert [s.strict for s in seen] == [True, False]
    assert main(["bench", "--quick", "--loop", "asyncio"]) == 0
    assert [s.loop for s in seen] == ["auto", "auto", "asyncio"]


# --- the registry -------------------------------------------------------------------------


def test_a_scenario_is_registered_in_one_place_and_known_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scenarios, "REGISTRY", dict(scenarios.REGISTRY))
    spec = TargetSpec("warmth", ">=", 1.0, "x", ratio_value("warm_over_cold"))

    @scenarios.scenario("lukewarm", "{traders} traders, gently", targets=[spec])
    async def lukewarm(bench: Bench, result: ScenarioResult) -> None:
        raise AssertionError("not run here")

    assert parse_scenarios("lukewarm,hot") == ("hot", "lukewarm")
    assert default_scenarios(quick=False)[-1] == "lukewarm"  # registration order
    assert scenarios.REGISTRY["lukewarm"].describe(QUICK) == "10 traders, gently"
    result = ScenarioResult("lukewarm", "", ratios={"warm_over_cold": 0.5})
    assert build_targets({"lukewarm": result}, QUICK) == [
        Target("lukewarm", "warmth", ">=", 1.0, "x", 0.5)
    ]
    with pytest.raises(ValueError, match="registered twice"):
        scenarios.scenario("hot", "again")(lukewarm)
