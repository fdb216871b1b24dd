"""Import fills from a CSV file into one portfolio (``pgportfolio import``).

The file has a header line; these columns are read (any others are ignored):

- ``symbol`` (required): the instrument, as the ledger spells it (``AAPL``, ``ES:2027H``).
- ``quantity`` (required): signed, positive buys and negative sells; at most 8 places.
- ``price`` (required): positive, at most 8 places.
- ``fee`` (optional): not negative; an empty cell or no column means 0.
- ``request_id`` (optional column): the fill's request id, what makes it idempotent.
- ``execution_id`` (optional column): the broker's execution id, used as the request id
  when ``request_id`` is absent or empty.

Every row needs a request id or an execution id: a second import of the same file finds
every fill already in the log (a duplicate) and changes nothing; an id seen before with
other values is refused (PF005).

Rows are sent in file order, in chunks, each chunk one call of ``apply_fills_arrays`` in
one transaction. A chunk is checked here first (types, the two ids); then, if the ledger
refuses any of its elements, the transaction is rolled back: nothing of a chunk is ever
half-applied. Both kinds of problem are reported with their file line numbers, and the
import stops at the first chunk that has any, because the fills after it must not be
applied before it (the order of fills decides cost basis and realized P&L). The chunks
before it stay committed; after a fix, running the import again skips them as duplicates.
"""

from __future__ import annotations

import csv
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg

from pgportfolio.values import fits_in_batch

# The core takes at most 10,000 operations per call (sql/128_operations.sql).
MAX_CHUNK = 10_000
DEFAULT_CHUNK = 5_000
REQUIRED_COLUMNS = ("symbol", "quantity", "price")
_ID_LIMIT = 200  # the ledger's request-id length limit

# Named arguments: the arrays the importer does not send keep their defaults.
_APPLY = (
    "SELECT item, duplicate, sqlstate, message, detail FROM pgportfolio.apply_fills_arrays("
    "p_portfolio_ids => %(portfolio_ids)s::bigint[], p_symbols => %(symbols)s::text[], "
    "p_quantities => %(quantities)s::numeric[], p_prices => %(prices)s::numeric[], "
    "p_fees => %(fees)s::numeric[], p_request_ids => %(request_ids)s::text[])"
)


class ImportFileError(ValueError):
    """The file cannot be imported at all: no header, or a required column missing."""


@dataclass(frozen=True, slots=True)
class FillRow:
    line: int
    symbol: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    request_id: str


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row not applied: refused by this importer (``sqlstate`` None) or by the ledger."""

    line: int
    message: str
    sqlstate: str | None = None


@dataclass(slots=True)
class ImportReport:
    rows: int = 0  # rows of the chunks committed (applied or already there)
    applied: int = 0
    duplicates: int = 0
    chunks: int = 0
    seconds: float = 0.0
    problems: list[RowProblem] = field(default_factory=list)
    # The lines of the chunk that was refused and rolled back (the import stopped there).
    refused_lines: tuple[int, int] | None = None
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def count_rows(path: Path) -> int:
    """The number of lines after the header (the progress bar's total; a quoted field
    with a line break makes it an overestimate)."""
    lines, last = 0, b"\n"
    with path.open("rb") as raw:
        for block in iter(lambda: raw.read(1 << 20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        lines += 1  # a last line without its newline
    return max(lines - 1, 0)


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() and fits_in_batch(value) else None


def parse_row(line: int, record: dict[str, str | None]) -> FillRow | RowProblem:
    """One CSV record as a fill, or what is wrong with it."""
    symbol = (record.get("symbol") or "").strip()
    if not symbol:
        return RowProblem(line, "symbol is empty")
    numbers: dict[str, Decimal] = {}
    for name in ("quantity", "price", "fee"):
        text = record.get(name) or ""
        if name == "fee" and not text.strip():
            numbers[name] = Decimal(0)
            continue
        value = _decimal(text)
        if value is None:
            return RowProblem(line, f"{name} is not a finite decimal number: {text!r}")
        numbers[name] = value
    request_id = (record.get("request_id") or "").strip() or (
        record.get("execution_id") or ""
    ).strip()
    if not request_id:
        return RowProblem(line, "no request_id or execution_id: the row could not be idempotent")
    if len(request_id) > _ID_LIMIT:
        return RowProblem(line, f"request id longer than {_ID_LIMIT} characters")
    return FillRow(line, symbol, numbers["quantity"], numbers["price"], numbers["fee"], request_id)


def read_chunks(path: Path, chunk_size: int) -> Iterator[list[FillRow | RowProblem]]:
    """The file's rows, parsed, in chunks of ``chunk_size``, in file order."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise ImportFileError(f"{path}: empty file (a header line is required)")
        columns = {name.strip() for name in reader.fieldnames if name}
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ImportFileError(f"{path}: missing column(s) {', '.join(missing)} in the header")
        if reader.fieldnames != [name.strip() for name in reader.fieldnames]:
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
        chunk: list[FillRow | RowProblem] = []
        for record in reader:
            if None in record:  # more cells than the header has columns
                chunk.append(RowProblem(reader.line_num, "more cells than the header has columns"))
            else:
                chunk.append(parse_row(reader.line_num, record))
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def import_fills(
    conninfo: str,
    path: Path,
    portfolio_id: int,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``path`` into ``portfolio_id`` (see the module's docstring). ``progress`` is
    called with the number of rows of each chunk done. ``dry_run`` checks every row here
    and sends nothing. A whole-call failure (a lost connection, a lock timeout) raises:
    the chunk in flight was rolled back, unless the connection died during its COMMIT,
    which the exception's note says; either way, running the import again is safe."""
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk_size must be 1 to {MAX_CHUNK}, not {chunk_size}")
    report = ImportReport(dry_run=dry_run)
    started = time.perf_counter()
    with psycopg.connect(conninfo) if not dry_run else _NoConnection() as conn:
        for chunk in _read_ahead(read_chunks(path, chunk_size)):
            bad = [row for row in chunk if isinstance(row, RowProblem)]
            fills = [row for row in chunk if isinstance(row, FillRow)]
            if bad:
                report.problems.extend(bad)
                if not dry_run:
                    report.refused_lines = (_line(chunk[0]), _line(chunk[-1]))
                    break
                continue
            if dry_run:
                report.rows += len(fills)
            else:
                refused = _apply_chunk(conn, portfolio_id, fills, report)
                if refused:
                    report.problems.extend(refused)
                    report.refused_lines = (fills[0].line, fills[-1].line)
                    break
            report.chunks += 1
            if progress is not None:
                progress(len(chunk))
    report.seconds = time.perf_counter() - started
    return report


def _read_ahead(
    chunks: Iterator[list[FillRow | RowProblem]],
) -> Iterator[list[FillRow | RowProblem]]:
    """The chunks, parsed one ahead in a thread: the parsing of the next chunk overlaps
    the database's work on this one (psycopg releases the GIL while it waits)."""
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce() -> None:
        try:
            for chunk in chunks:
                if not offer(("chunk", chunk)):
                    return
            offer(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            offer(("error", exc))

    thread = threading.Thread(target=produce, name="pgportfolio-import-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _line(row: FillRow | RowProblem) -> int:
    return row.line


def _apply_chunk(
    conn: psycopg.Connection[Any], portfolio_id: int, fills: list[FillRow], report: ImportReport
) -> list[RowProblem]:
    """One chunk in one transaction: committed if the ledger took every element (applied
    or already there), rolled back otherwise, returning the refused elements."""
    params = {
        "portfolio_ids": [portfolio_id] * len(fills),
        "symbols": [f.symbol for f in fills],
        "quantities": [f.quantity for f in fills],
        "prices": [f.price for f in fills],
        "fees": [f.fee for f in fills],
        "request_ids": [f.request_id for f in fills],
    }
    try:
        rows = conn.execute(_APPLY, params).fetchall()
    except BaseException:
        conn.rollback()
        raise
    refused = [
        RowProblem(
            fills[item - 1].line,
            message if not detail else f"{message} ({detail})",
            sqlstate,
        )
        for item, _duplicate, sqlstate, message, detail in rows
        if sqlstate is not None
    ]
    if refused:
        conn.rollback()
        return refused
    try:
        conn.commit()
    except psycopg.OperationalError as exc:
        exc.add_note(
            f"The commit of lines {fills[0].line}-{fills[-1].line} may or may not have "
            "happened; running the same import again is safe (request ids)."
        )
        raise
    duplicates = sum(1 for row in rows if row[1])
    report.rows += len(fills)
    report.duplicates += duplicates
    report.applied += len(fills) - duplicates
    return []


class _NoConnection:
    """The connection of a dry run: there is none."""

    def __enter__(self) -> Any:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
