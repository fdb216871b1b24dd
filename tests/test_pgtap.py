"""Every pgTAP suite in tests/pgtap, one item per file, each on a fresh database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import pgtap
from tests.support.pgtap import parse_tap, run_pgtap_file

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


SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


def test_every_pgtap_file_is_numbered_like_the_sql_file_it_tests() -> None:
    # tests/pgtap/145_apply_fills.sql tests sql/145_apply_fills.sql; a file with several
    # concerns of one SQL file adds a suffix (140_fill_*.sql), never a number of its own.
    sql_numbers = {path.name.split("_", 1)[0] for path in SQL_DIR.glob("*.sql")}
    assert sql_numbers
    unmatched = [p.name for p in PGTAP_FILES if p.name.split("_", 1)[0] not in sql_numbers]
    assert unmatched == [], f"no sql/ file has the number of {unmatched}"


def test_parse_tap_counts_skips_and_todos_apart_from_passes() -> None:
    # pgTAP's own output for skip('no server', 2) and todo('later', 2) around two checks.
    result = parse_tap(
        "1..5\n"
        "ok 1 - first\n"
        "ok 2 # SKIP no server\n"
        "ok 3 - third # SKIP no server\n"
        "not ok 4 - fourth # TODO later\n"
        '# Failed (TODO) test 4: "fourth"\n'
        "ok 5 - fifth # TODO later\n"
    )
    assert result.passed == ["#1 first"]
    assert result.skipped == ["#2 (SKIP no server)", "#3 third (SKIP no server)"]
    assert result.todo == ["#4 fourth (TODO later)", "#5 fifth (TODO later)"]
    assert result.failed == []
    assert result.problems() == []  # five planned, five ran


@pytest.mark.debian_extensions
def test_a_pgtap_file_with_a_skip_or_a_todo_is_not_a_pass(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "skips.sql"
    path.write_text(
        "BEGIN;\nSELECT plan(3);\nSELECT ok(true, 'runs');\n"
        "SELECT skip('no reason', 1);\n"
        "SELECT todo('later', 1);\nSELECT ok(false, 'not yet');\n"
        "SELECT * FROM finish();\nROLLBACK;\n"
    )
    # keep this file out of the run's pgTAP totals
    monkeypatch.setattr(pgtap, "_TOTALS", dict.fromkeys(pgtap._TOTALS, 0))
    with pytest.raises(pytest.skip.Exception) as skipped:
        run_pgtap_file(db, path)
    assert str(skipped.value) == (
        "skips.sql: 1 pgTAP assertion(s) skipped, 1 todo:"
        " #2 (SKIP no reason); #3 not yet (TODO later)"
    )
    assert pgtap._TOTALS == {"files": 1, "passed": 1, "failed": 0, "skipped": 1, "todo": 1}
