"""``pgportfolio import``: chunks applied whole or not at all, problems reported by line,
idempotent by request id, and the result verified by the ledger."""

from __future__ import annotations

import random
from decimal import Decimal as D
from pathlib import Path

import pytest

from pgportfolio import PortfolioClient
from pgportfolio.cli import EXIT_FAILED, EXIT_OK, main
from pgportfolio.importer import count_rows, import_fills

HEADER = "symbol,quantity,price,fee,request_id,execution_id\n"


def _rows(count: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for n in range(count):
        quantity = D(rng.randint(-60, 60) or 5) / D(rng.choice([1, 4]))
        price = D(rng.randint(100, 20_000)) / D(100)
        fee = "" if n % 7 == 0 else str(D(rng.randint(0, 99)) / D(100))
        symbol = rng.choice(["IMA", "IMB", "IMC:2027H"])
        # half the rows name a request id, the others only their execution id
        request_id = f"req-{n}" if n % 2 else ""
        lines.append(f"{symbol},{quantity},{price},{fee},{request_id},exec-{n}\n")
    return lines


def _write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(lines), encoding="utf-8")
    return path


def _state(client: PortfolioClient, pid: int) -> tuple[object, ...]:
    snapshot = client.get_portfolio(pid)
    positions = sorted(
        (s, p.quantity, p.cost_basis, p.realized_pnl) for s, p in snapshot.positions.items()
    )
    return (snapshot.version, snapshot.cash_balance, snapshot.realized_pnl, positions)


def _run(db: str, path: Path, pid: int, *extra: str) -> int:
    return main(["import", str(path), "--portfolio", str(pid), "--dsn", db, *extra])


def test_import_then_reimport_changes_nothing(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "fills.csv", _rows(2500))
    assert count_rows(path) == 2500
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("import", D(10_000_000))
        assert _run(db, path, pid, "--chunk-size", "1000") == EXIT_OK
        out = capsys.readouterr().out
        assert "2,500 rows in" in out
        assert "2,500 applied, 0 already in the ledger" in out
        after_first = _state(client, pid)
        assert after_first[0] == 2501  # the creation and one event per row
        assert all(check.ok for check in client.verify_portfolio(pid))
        log = client.event_log(pid)
        assert [e.request_id for e in log[1:4]] == ["exec-0", "req-1", "exec-2"]

        assert _run(db, path, pid, "--chunk-size", "700") == EXIT_OK
        assert "0 applied, 2,500 already in the ledger" in capsys.readouterr().out
        assert _state(client, pid) == after_first, "a second import changed nothing"


def test_a_bad_row_stops_the_import_before_its_chunk(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _rows(30)
    lines[14] = "IMA,ten,10.5,,,exec-14\n"  # line 16 of the file (header is line 1)
    lines[16] = "IMA,1,10.5,,,\n"  # line 18: no id at all
    path = _write(tmp_path / "bad.csv", lines)
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("bad rows", D(1_000_000))
        assert _run(db, path, pid, "--chunk-size", "10", "--no-progress") == EXIT_FAILED
        err = capsys.readouterr().err
        assert f"{path}:16: quantity is not a finite decimal number: 'ten'" in err
        assert f"{path}:18: no request_id or execution_id" in err
        assert "stopped at the chunk of lines 12-21, rolled back; the 10 rows before it" in err
        assert client.get_portfolio(pid).version == 11, "only the first chunk was applied"


def test_a_refused_element_rolls_its_chunk_back_and_a_rerun_finishes(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _rows(40, seed=9)
    bad = list(good)
    bad[23] = "imb,1,10,,,exec-23\n"  # line 25: the ledger refuses the symbol (22023)
    bad[27] = "IMA,999,1,,req-3,exec-27\n"  # line 29: req-3 (line 5) with other values: PF005
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("refusals", D(1_000_000))
        clean = client.create_portfolio("clean", D(1_000_000))
        path = _write(tmp_path / "refused.csv", bad)
        assert _run(db, path, pid, "--chunk-size", "15", "--no-progress") == EXIT_FAILED
        err = capsys.readouterr().err
        assert f"{path}:25: [22023] invalid symbol" in err
        assert f"{path}:29: [PF005]" in err
        assert "stopped at the chunk of lines 17-31, rolled back" in err
        assert client.get_portfolio(pid).version == 16, "the second chunk left no trace"
        assert all(check.ok for check in client.verify_portfolio(pid))

        # Fixed file: the first chunk is found in the ledger, the rest applied, and the
        # portfolio ends exactly as a clean import of the fixed file.
        fixed = _write(tmp_path / "fixed.csv", good)
        assert _run(db, fixed, pid, "--chunk-size", "15", "--no-progress") == EXIT_OK
        assert "25 applied, 15 already in the ledger" in capsys.readouterr().out
        assert _run(db, fixed, clean, "--no-progress") == EXIT_OK
        assert _state(client, pid)[1:] == _state(client, clean)[1:]


def test_a_reused_request_id_with_other_values_is_refused(db: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "reuse.csv", ["IMA,1,10,,r1,\n", "IMA,2,10,,r1,\n"])
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("reuse", D(1000))
        report = import_fills(db, path, pid)
        assert [(p.line, p.sqlstate) for p in report.problems] == [(3, "PF005")]
        assert report.refused_lines == (2, 3)
        assert client.get_portfolio(pid).version == 1


def test_dry_run_and_file_errors(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _rows(12)
    lines[5] = "IMA,1,-,,,exec-5\n"
    path = _write(tmp_path / "dry.csv", lines)
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("dry", D(1000))
        assert _run(db, path, pid, "--dry-run", "--chunk-size", "4") == EXIT_FAILED
        captured = capsys.readouterr()
        assert f"{path}:7: price is not a finite decimal number: '-'" in captured.err
        assert "checked 8 rows, 1 problem(s); sent nothing" in captured.out
        assert client.get_portfolio(pid).version == 1

        missing = _write(tmp_path / "missing.csv", ["IMA,1\n"], header="symbol,quantity\n")
        assert _run(db, missing, pid) == EXIT_FAILED
        assert "missing column(s) price in the header" in capsys.readouterr().err
        empty = tmp_path / "empty.csv"
        empty.write_text("")
        assert _run(db, empty, pid) == EXIT_FAILED
        assert "empty file" in capsys.readouterr().err
        nan = _write(tmp_path / "nan.csv", ["IMA,NaN,1,,,e1\n", "IMA,1,1e999999,,,e2\n"])
        report = import_fills(db, nan, pid, dry_run=True)
        assert [p.line for p in report.problems] == [2, 3]


def test_chunk_size_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "x.csv", [])
    with pytest.raises(SystemExit):
        main(["import", str(path), "--portfolio", "1", "--chunk-size", "10001"])
    assert "at most 10000" in capsys.readouterr().err
