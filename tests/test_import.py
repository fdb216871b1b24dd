"""``pgportfolio import``: chunks applied whole or not at all, problems reported by line,
idempotent by request id, and the result verified by the ledger."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest

from pgportfolio import PortfolioClient
from pgportfolio.bench.importing import check_import, pg_divide, write_fills_csv
from pgportfolio.cli import EXIT_FAILED, EXIT_OK, main
from pgportfolio.importer import ImportFileError, count_rows, import_fills

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


# --- the 20,000-row import, checked against an independent computation -------------------


def test_twenty_thousand_generated_fills_match_an_independent_replay_and_again_change_nothing(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The small form of the 1,000,000-row bench scenario (pgportfolio bench --scenarios
    import): opens, adds, partial reductions, closes and flips on 50 symbols."""
    cash = D(10) ** 12
    path = tmp_path / "generated.csv"
    model = write_fills_csv(path, 20_000, initial_cash=cash, seed=5)
    assert model.fills == 20_000
    assert len(model.open_positions()) > 10
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("generated", cash)
        assert _run(db, path, pid, "--no-progress") == EXIT_OK
        assert "20,000 applied, 0 already in the ledger" in capsys.readouterr().out
        snapshot = client.get_portfolio(pid)
        assert check_import(model, snapshot, client.verify_portfolio(pid)) == []

        again = import_fills(db, path, pid)
        assert (again.applied, again.duplicates, again.skipped) == (0, 20_000, 20_000)
        assert client.get_portfolio(pid) == snapshot, "the second import changed nothing"


def test_the_replay_finds_a_wrong_portfolio(db: str, tmp_path: Path) -> None:
    """Negative control: one fill more than the file, and the comparison says where."""
    cash = D(1_000_000)
    path = tmp_path / "small.csv"
    model = write_fills_csv(path, 200, initial_cash=cash, seed=2, symbols=3)
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("control", cash)
        assert import_fills(db, path, pid).ok
        assert check_import(model, client.get_portfolio(pid), client.verify_portfolio(pid)) == []
        client.apply_fill(pid, "IMP.000", D(1), D(10), request_id="one-more")
        found = check_import(model, client.get_portfolio(pid), client.verify_portfolio(pid))
        assert any(f.startswith("cash: expected") for f in found)
        assert any(f.startswith("version: expected 201") for f in found)


def test_the_replay_divides_as_postgresql_does(db: str) -> None:
    """numeric division's result scale (16 significant digits at least, at least either
    operand's scale), compared with the server on awkward operands."""
    cases = [
        (D("1"), D("3")),
        (D("2"), D("3")),
        (D("123456.78") * D("7") * D("1.0000000000000000000000"), D("9")),
        (D("-0.0001"), D("7")),
        (D("99999"), D("10000.5")),
        (D("5"), D("0.00003")),
        (D("1.5"), D("1.5")),
        (D("9999.9999"), D("1")),
    ]
    with psycopg.connect(db) as conn:
        for dividend, divisor in cases:
            (server,) = conn.execute(
                "SELECT %s::numeric / %s::numeric", [dividend, divisor]
            ).fetchone()
            assert pg_divide(dividend, divisor) == server
            assert pg_divide(dividend, divisor).as_tuple().exponent == server.as_tuple().exponent


# --- re-runs: the ledger is asked which rows it holds, and sent only the others ---------


def test_a_rerun_sends_only_the_rows_not_in_the_ledger(db: str, tmp_path: Path) -> None:
    lines = _rows(300, seed=11)
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("partial", D(10_000_000))
        head = _write(tmp_path / "head.csv", lines[:120])
        assert import_fills(db, head, pid, chunk_size=50).applied == 120
        whole = _write(tmp_path / "whole.csv", lines)
        report = import_fills(db, whole, pid, chunk_size=50)
        assert (report.applied, report.duplicates, report.rows) == (180, 120, 300)
        # Chunks 1 and 2 were found before sending; chunk 3 (rows 101-150) in part; after
        # a chunk with none found, the importer stops asking and the ledger answers alone.
        assert report.skipped == 120
        clean = client.create_portfolio("clean", D(10_000_000))
        assert import_fills(db, whole, clean).ok
        assert _state(client, pid)[1:] == _state(client, clean)[1:]


def test_a_row_in_the_ledger_with_other_values_is_sent_and_refused(db: str, tmp_path: Path) -> None:
    """The look-up must not hide a conflict: the id is in the log, the values differ."""
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("conflict", D(1_000_000))
        first = _write(tmp_path / "first.csv", ["IMA,5,10,1,r1,\n", "IMA,5,10,,r2,\n"])
        assert import_fills(db, first, pid).applied == 2
        for changed in ("IMA,5,10,1.5,r2,", "IMB,5,10,,r2,", "IMA,6,10,,r2,", "IMA,5,10.01,,r2,"):
            second = _write(tmp_path / "second.csv", ["IMA,5,10,1.00,r1,\n", changed + "\n"])
            report = import_fills(db, second, pid)
            assert [(p.line, p.sqlstate) for p in report.problems] == [(3, "PF005")], changed
            assert report.refused_lines == (2, 3)
        same = _write(tmp_path / "same.csv", ["IMA,5.0,10.00,1,r1,\n", "IMA,5,10,0,r2,\n"])
        assert import_fills(db, same, pid).skipped == 2  # equal as numbers: duplicates
        assert client.get_portfolio(pid).version == 3


def test_text_that_looks_like_array_syntax_arrives_as_written(db: str, tmp_path: Path) -> None:
    """Symbols and ids travel inside array literals: quotes, commas, braces, backslashes,
    spaces and the word NULL must stay data."""
    ids = ["a,b", "{x}", 'say "hi"', "back\\slash", "in side", "NULL", "é-ü"]
    rows = [f'NULL,1,10,,"{i.replace(chr(34), chr(34) * 2)}",\n' for i in ids]
    path = _write(tmp_path / "odd.csv", rows)
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("odd", D(1_000_000))
        assert import_fills(db, path, pid).applied == len(ids)
        log = client.event_log(pid)[1:]
        assert [e.request_id for e in log] == ids
        assert {e.symbol for e in log} == {"NULL"}  # the symbol NULL, not SQL's NULL
        again = import_fills(db, path, pid)
        assert (again.applied, again.skipped) == (0, len(ids))

        bad = _write(tmp_path / "bad-symbols.csv", ['"A,B",1,10,,s1,\n', 'A"B,1,10,,s2,\n'])
        report = import_fills(db, bad, pid)
        assert [(p.line, p.sqlstate) for p in report.problems] == [(2, "22023"), (3, "22023")]


def test_a_nul_character_is_a_bad_row_not_a_failed_import(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL text cannot hold NUL: sent, it would fail the whole call (it did)."""
    path = _write(tmp_path / "nul.csv", ["IMA,1,10,,ok-1,\n", "IM\x00A,1,10,,nul-1,\n"])
    path2 = _write(tmp_path / "nul-id.csv", ["IMA,1,10,,ok-1,\n", "IMA,1,10,,nul\x00-2,\n"])
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("nul", D(1_000_000))
        assert _run(db, path, pid, "--no-progress") == EXIT_FAILED
        assert f"{path}:3: symbol contains a NUL character" in capsys.readouterr().err
        report = import_fills(db, path2, pid)
        assert [p.message for p in report.problems] == ["request id contains a NUL character"]
        assert client.get_portfolio(pid).version == 1


def test_a_file_that_is_not_utf8_is_refused_whole(db: str, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "IMA,1,10,,caf\xe9,\n").encode("latin-1"))
    with pytest.raises(ImportFileError, match="not UTF-8 text"):
        import_fills(db, path, 1, dry_run=True)


def test_short_rows_blank_lines_and_header_spaces(db: str, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "loose.csv",
        ["IMA,1,10\n", "\n", "IMA,2,10,,\n", "IMA,3,10,0.5,,e3\n"],
        header=" symbol , quantity,price ,fee,request_id,execution_id\n",
    )
    report = import_fills(db, path, 1, dry_run=True, chunk_size=1)
    assert [(p.line, p.message) for p in report.problems] == [
        (2, "no request_id or execution_id: the row could not be idempotent"),
        (4, "no request_id or execution_id: the row could not be idempotent"),
    ]
    assert report.rows == 1
    empty_price = _write(tmp_path / "empty-price.csv", ["IMA,1, ,,,e1\n"])
    assert [p.message for p in import_fills(db, empty_price, 1, dry_run=True).problems] == [
        "price is empty"
    ]


@pytest.mark.timeout(120)
def test_the_bench_scenario_imports_checks_and_imports_again(
    admin_conninfo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--scenarios", "import", "--import-rows", "3000"]
    code = main([*argv, "--dsn", admin_conninfo, "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    scenario = json.loads(out.read_text())["scenarios"]["import"]
    assert scenario["error"] is None
    assert scenario["extra"]["checked"] == "clean"
    first, again = scenario["variants"]["first"], scenario["variants"]["again"]
    assert (first["fills"], first["extra"]["applied"]) == (3000, 3000)
    assert (again["fills"], again["extra"]["applied"], again["extra"]["found_before_sending"]) == (
        3000,
        0,
        3000,
    )
    assert first["fills_per_second"] > 0
    assert again["fills_per_second"] > 0
    assert "import: checked: verify_portfolio clean" in printed


# --- execution metadata: executed_at, order_id, tags --------------------------------------

META_HEADER = "symbol,quantity,price,request_id,executed_at,order_id,tags\n"
META_ROWS = [
    'IMA,10,100,m1,2026-11-02T14:30:00Z,O-1,"{""account"": ""A1"", ""venue"": ""XNAS""}"\n',
    "IMA,-4,101,m2,2026-11-02 15:30:00+01:00,O-1,\n",
    "IMB,3,50,m3,,,\n",
]


def test_execution_metadata_is_imported_and_part_of_the_identity(db: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "meta.csv", META_ROWS, header=META_HEADER)
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("meta", D(1_000_000))
        assert import_fills(db, path, pid).applied == 3
        first, second, third = client.event_log(pid)[1:]
        at = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
        assert (first.executed_at, first.order_id, first.tags) == (
            at,
            "O-1",
            {"account": "A1", "venue": "XNAS"},
        )
        assert (second.executed_at, second.order_id, second.tags) == (at, "O-1", None)
        assert (third.executed_at, third.order_id) == (third.created_at, None)  # the default

        again = import_fills(db, path, pid)
        assert (again.applied, again.skipped) == (0, 3), "all three found before sending"

        # Each changed in one piece of its execution: not found, sent, refused (PF005).
        changed = [
            (0, META_ROWS[0].replace("14:30:00Z", "14:30:01Z")),
            (0, META_ROWS[0].replace("O-1", "O-2")),
            (0, META_ROWS[0].replace("A1", "A2")),
            (0, 'IMA,10,100,m1,2026-11-02T14:30:00Z,O-1,"{""account"": ""A1""}"\n'),
            (0, 'IMA,10,100,m1,,O-1,"{""account"": ""A1"", ""venue"": ""XNAS""}"\n'),
            (2, "IMB,3,50,m3,2026-11-02T14:30:00Z,,\n"),
            (2, "IMB,3,50,m3,,O-3,\n"),
        ]
        for index, row in changed:
            lines = list(META_ROWS)
            lines[index] = row
            edited = _write(tmp_path / "edited.csv", lines, header=META_HEADER)
            report = import_fills(db, edited, pid)
            assert [(p.line, p.sqlstate) for p in report.problems] == [(index + 2, "PF005")], row
        assert client.get_portfolio(pid).version == 4


def test_execution_metadata_that_cannot_be_read_is_a_bad_row(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        "IMA,1,10,b1,2026-11-02T14:30:00,,\n",  # no UTC offset
        "IMA,1,10,b2,yesterday,,\n",
        'IMA,1,10,b3,,,"[""A1""]"\n',
        'IMA,1,10,b4,,,"{""account"": 1}"\n',
        'IMA,1,10,b5,,,"{account}"\n',
        'IMA,1,10,b6,,,"{""a"": ""x\\u0000""}"\n',
        'IMA,1,10,b7,,,"{""a"": ""\\ud800""}"\n',
        "IMA,1,10,b8,,O\x00,\n",
    ]
    path = _write(tmp_path / "bad-meta.csv", rows, header=META_HEADER)
    report = import_fills(db, path, 1, dry_run=True, chunk_size=1)
    assert [(p.line, p.message.split(":")[0]) for p in report.problems] == [
        (2, "executed_at has no UTC offset (2026-12-01T14"),
        (3, "executed_at is not an ISO 8601 time"),
        (4, "tags is not a JSON object of strings"),
        (5, "tags is not a JSON object of strings"),
        (6, "tags is not JSON"),
        (7, "tags contains a NUL character"),
        (8, "tags is not valid Unicode"),
        (9, "order_id contains a NUL character"),
    ]

    future = datetime.now(UTC) + timedelta(hours=1)
    late = _write(
        tmp_path / "future.csv",
        ["IMA,1,10,f1,,,\n", f"IMA,1,10,f2,{future.isoformat()},,\n"],
        header=META_HEADER,
    )
    with PortfolioClient(db, min_size=1, max_size=2) as client:
        pid = client.create_portfolio("future", D(1_000))
        assert _run(db, late, pid, "--no-progress") == EXIT_FAILED
        assert f"{late}:3: [22023] executed_at is in the future" in capsys.readouterr().err
        assert client.get_portfolio(pid).version == 1
