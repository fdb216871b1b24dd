"""Every pgTAP suite in tests/pgtap, one item per file, each on a fresh database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pgtap_plugin import parse_tap, run_pgtap_file

PGTAP_DIR = Path(__file__).parent / "pgtap"
PGTAP_FILES = sorted(PGTAP_DIR.glob("*.sql"))


@pytest.mark.debian_extensions
@pytest.mark.parametrize("path", PGTAP_FILES, ids=[p.name for p in PGTAP_FILES])
def test_pgtap_file(path: Path, db: str) -> None:
    result = run_pgtap_file(db, path)
    assert result.ran > 0


def test_parse_tap_reports_failures_and_plan_mismatch() -> None:
    # The runner must be able to fail: a not-ok line and a short run are both problems.
    result = parse_tap("1..3\nok 1 - first\nnot ok 2 - second\n# Failed test 2\n# got: 1\n")
    assert result.failed == ["#2 second"]
    assert result.diagnostics[2] == ["# Failed test 2", "# got: 1"]
    assert "planned 3 assertions, ran 2" in result.problems()
    assert parse_tap("ok 1\n").problems() == ["no plan was printed (1..N)"]
