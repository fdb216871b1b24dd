"""``pgportfolio bench --scenarios push``: a short run of the push scenario.

It checks that the scenario measured what it says (every event of the window yielded and
timed, the idle read timed) and that its target was evaluated; it asserts no latency
(that is what the bench reports).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgportfolio.bench import scenarios
from pgportfolio.cli import main


@pytest.mark.timeout(120)
def test_quick_push_run_times_every_event_of_its_window(
    admin_conninfo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = main(
        ["bench", "--quick", "--scenarios", "push", "--dsn", admin_conninfo, "--json", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    push = json.loads(out.read_text())["scenarios"]["push"]
    assert push["error"] is None
    assert set(push["variants"]) == {"subscriber_pgbench", "subscriber_client"}
    for subscriber in push["variants"].values():
        assert subscriber["error"] is None, subscriber
        assert subscriber["errors"] == {}  # no failed write, no event left unyielded
        assert subscriber["extra"]["missed_events"] == 0
        # About a second of writes (pgbench keeps its rate only roughly), each timed once.
        assert subscriber["samples"] == subscriber["fills"] > scenarios.PUSH_EVENTS_PER_SECOND / 4
        assert 0 <= subscriber["p50_ms"] <= subscriber["p99_ms"] <= subscriber["p999_ms"]
    idle = push["reads"]["events_after_idle"]
    assert (idle["rows"], idle["samples"]) == (0, 5)
    targets = json.loads(out.read_text())["targets"]
    assert [(t["scenario"], t["name"][:3]) for t in targets] == [("push", "(a)"), ("push", "(b)")]
    assert all(t["status"] in ("PASS", "MISS") for t in targets)  # measured, not ERROR
    assert "commit to subscriber, p99" in printed
