"""The failover drill on a real formation: one kill of the primary under 100 traders.

Synchronous replication (the formation's own ``ANY 1``): nothing acknowledged is lost or
duplicated. The negative control, the same drill with asynchronous replication, must find
acknowledged operations lost: if it did not, the drill could not see a loss at all. Both
kill the primary while its WAL senders are stopped for a second (the network to every
standby stalls, then the machine dies), the moment asynchronous replication loses writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgportfolio.ha.drill import DrillResult, DrillSettings, run_drill
from pgportfolio.ha.formation import Formation

pytestmark = [pytest.mark.debian_extensions, pytest.mark.timeout(600)]


def _drill(formation: Formation, tmp_path: Path, *, synchronous: bool) -> DrillResult:
    json_path = tmp_path / "drill.json"
    result = run_drill(
        DrillSettings(
            directory=formation.directory,
            traders=100,
            failovers=1,
            warmup=3.0,
            settle=1.0,
            stall=1.0,
            synchronous=synchronous,
            json_path=json_path,
        )
    )
    assert json.loads(json_path.read_text())["acknowledged"] == result.acknowledged
    return result


def test_drill_loses_nothing_acknowledged(healthy_formation: Formation, tmp_path: Path) -> None:
    result = _drill(healthy_formation, tmp_path, synchronous=True)
    assert result.acknowledged > 1000
    assert len(result.failover_seconds) == 1
    assert (result.lost, result.duplicated) == (0, 0)
    assert result.refused_but_applied == 0
    assert result.unexpected_events == 0
    assert (result.cash_mismatches, result.position_mismatches) == (0, 0)
    assert result.verify_failures == 0
    assert len(result.nodes_verified) == 3
    assert result.ok


def test_negative_control_asynchronous_replication_loses_acknowledged(
    healthy_formation: Formation, tmp_path: Path
) -> None:
    result = _drill(healthy_formation, tmp_path, synchronous=False)
    assert result.lost > 0, "asynchronous replication lost nothing: the drill cannot see a loss"
    assert not result.ok
    # the formation is synchronous again for whatever runs next
    assert healthy_formation.synchronous_standby_names().startswith("ANY 1")
