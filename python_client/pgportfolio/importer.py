"""Import fills from a CSV file into one portfolio (``pgportfolio import``).

The file has a header line; these columns are read (any others are ignored):

- ``symbol`` (required): the instrument, as the ledger spells it (``AAPL``, ``ES:2027H``).
- ``quantity`` (required): signed, positive buys and negative sells; at most 8 places.
- ``price`` (required): positive, at most 8 places.
- ``fee`` (optional): not negative; an empty cell or no column means 0.
- ``request_id`` (optional column): the fill's request id, what makes it idempotent.
- ``execution_id`` (optional column): the broker's execution id, used as the request id
  when ``request_id`` is absent or empty.
- ``executed_at`` (optional): when the trade happened, ISO 8601 with a UTC offset
  (``2026-12-01T14:30:00Z``, ``2026-12-01 15:30:00+01:00``); empty: the ledger's time.
- ``order_id`` (optional): the broker's order id.
- ``tags`` (optional): a flat JSON object of strings (``{"account": "A1"}``; quote the cell
  and double its quotes, as CSV does).

The last three are part of the fill's identity, as the numbers are.

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

Speed (docs/performance.md, "Import"): the ledger's work per fill, done while the
portfolio is locked, is most of an import's time, so everything else keeps out of its
way. A reader thread parses the next chunk and writes its arrays in PostgreSQL's text form
while the ledger applies this one (one string per array for the driver to send, and only
the refused and duplicate elements come back). A re-run is mostly fills already in the
log: the ledger finds a duplicate by its request id while holding the portfolio's lock,
so the importer first reads which of a chunk's ids the log holds (a plain read, no lock)
and sends only the others. It looks only while it keeps finding some, so a first import
pays for one look. The ledger's own idempotency stays the guarantee: a fill that arrives
in between is still found there.
"""

from __future__ import annotations

import contextlib
import csv
import json
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg

# The core takes at most 10,000 operations per call (sql/128_operations.sql).
MAX_CHUNK = 10_000
DEFAULT_CHUNK = 5_000
_ID_LIMIT = 200  # the ledger's request-id length limit
# Chunks parsed ahead of the one being applied: the one being read and one ready.
_READ_AHEAD = 2


class ImportFileError(ValueError):
    """The file cannot be imported at all: no header, a required column missing, not UTF-8."""


class _Refused(ValueError):
    """A cell this importer refuses: the message completes "<column> ..."."""


# --- the fields of a fill -----------------------------------------------------------------


def _text(cell: str) -> str:
    if "\x00" in cell:  # PostgreSQL text cannot hold it: the whole call would fail
        raise _Refused("contains a NUL character")
    return cell


def _number(cell: str) -> Decimal:
    try:
        value = Decimal(cell)
    except InvalidOperation:
        value = Decimal("NaN")
    # Out-of-range exponents would fail the whole call's array, not just this element
    # (the rule of values.fits_in_batch, for finite values).
    if not (value.is_finite() and -1000 < value.adjusted() < 1000):
        raise _Refused(f"is not a finite decimal number: {cell!r}")
    return value


def _time(cell: str) -> datetime:
    try:
        value = datetime.fromisoformat(cell)
    except ValueError:
        raise _Refused(f"is not an ISO 8601 time: {cell!r}") from None
    if value.tzinfo is None:  # read in the server's time zone, it would be a silent guess
        raise _Refused(f"has no UTC offset (2026-12-01T14:30:00Z or +01:00): {cell!r}")
    return value


def _tags(cell: str) -> str:
    """The tags as JSON text. The ledger checks their size and characters (22023, for
    this row alone); what it could not even read would fail the whole call, so that is
    refused here: not a JSON object of strings, a NUL, a lone surrogate."""
    try:
        value = json.loads(cell)
    except ValueError:
        raise _Refused(f"is not JSON: {cell!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _Refused(f"is not a JSON object of strings: {cell!r}")
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text:
        raise _Refused("contains a NUL character")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise _Refused(f"is not valid Unicode: {cell!r}") from None
    return text


def _quoted(value: str) -> str:
    """An element of an array literal: quoted, so that commas, braces, spaces and the
    word NULL stay data."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quoted_all(values: Sequence[str]) -> str:
    """``{"a","b"}``: every element quoted, escaped in one pass over their join. NUL is
    the separator: no value holds one (refused when parsed)."""
    if not values:
        return "{}"
    joined = "\x00".join(values).replace("\\", "\\\\").replace('"', '\\"')
    return '{"' + joined.replace("\x00", '","') + '"}'


_REQUIRED: Any = object()  # a Field's default: an empty or absent cell refuses the row


@dataclass(frozen=True, slots=True)
class Field:
    """One value of a fill: its CSV column (also its column in ``event_log``), its
    argument of ``apply_fills_arrays``, how a cell becomes a value and a value an array
    element. Every field is part of the request's identity: a re-run compares it with
    what the log holds (see ``_already_in_ledger``)."""

    name: str
    parameter: str
    sql_type: str
    parse: Callable[[str], Any]  # a stripped, non-empty cell; _Refused says what is wrong
    text: Callable[[Any], str]  # a value (never None) as text
    quote: bool  # whether that text must be quoted in an array literal
    default: Any = _REQUIRED  # the value of an empty cell or an absent column
    # How the look-up finds the ledger's value equal to the row's (e: the log, u: the row).
    match: str = "e.{name} IS NOT DISTINCT FROM u.{name}"

    def literal(self, values: Sequence[Any]) -> str:
        """The values as one array literal in PostgreSQL's text form."""
        text = self.text
        if None in values:
            quote = _quoted if self.quote else str
            return "{" + ",".join("NULL" if v is None else quote(text(v)) for v in values) + "}"
        if self.quote:
            return _quoted_all(values if text is str else list(map(text, values)))
        return "{" + ",".join(map(text, values)) + "}"


# event_log shows a fill sent without executed_at at its ledger time (created_at), and a
# fill sent with one at that time: the ledger tells them apart (the identity holds what
# was sent), the view cannot. So the look-up counts a row without executed_at as in the
# log only where the view shows the default, and a row with one only where that is not
# the default; what it cannot tell is sent, and the ledger decides. (Left over: a fill
# sent with an executed_at equal to its own ledger time, then a row without one.)
_EXECUTED_AT_MATCH = (
    "CASE WHEN u.executed_at IS NULL THEN e.executed_at = e.created_at"
    " ELSE e.executed_at = u.executed_at AND e.executed_at <> e.created_at END"
)

# The fills' fields, in the order the ledger lists them: one line each.
FIELDS: tuple[Field, ...] = (
    Field("symbol", "p_symbols", "text", _text, str, quote=True),
    Field("quantity", "p_quantities", "numeric", _number, str, quote=False),
    Field("price", "p_prices", "numeric", _number, str, quote=False),
    Field("fee", "p_fees", "numeric", _number, str, quote=False, default=Decimal(0)),
    Field(
        "executed_at",
        "p_executed_ats",
        "timestamptz",
        _time,
        datetime.isoformat,  # 2020-01-01T00:00:10+00:00: nothing to quote
        quote=False,
        default=None,
        match=_EXECUTED_AT_MATCH,
    ),
    Field("order_id", "p_order_ids", "text", _text, str, quote=True, default=None),
    Field("tags", "p_tags", "jsonb", _tags, str, quote=True, default=None),
)
REQUIRED_COLUMNS = tuple(f.name for f in FIELDS if f.default is _REQUIRED)
_ID_COLUMNS = ("request_id", "execution_id")  # the first non-empty one is the request id

# Named arguments: the arrays the importer does not send keep their defaults. Only the
# elements that are not simply applied come back.
_APPLY = (
    "SELECT r.item, r.duplicate, r.sqlstate, r.message, r.detail"
    " FROM pgportfolio.apply_fills_arrays("
    "p_portfolio_ids => array_fill(%(portfolio_id)s::bigint, ARRAY[%(count)s::integer]), "
    + "".join(f"{f.parameter} => %({f.name})s::{f.sql_type}[], " for f in FIELDS)
    + "p_request_ids => %(request_ids)s::text[]) AS r"
    " WHERE r.sqlstate IS NOT NULL OR r.duplicate"
)
# Which of the rows the log holds as they are: the same request id, a fill, every field
# equal (the comparison the ledger makes before it answers "duplicate"). It reads the
# event_log view, so it takes no lock. LATERAL with LIMIT keeps the plan one index probe
# per row: joined plainly, the planner hashed the chunk and read every event of the
# portfolio (90 ms a chunk at 200,000 events, growing with the log).
_IN_LEDGER = (
    "SELECT u.item FROM unnest("
    + "".join(f"%({f.name})s::{f.sql_type}[], " for f in FIELDS)
    + "%(request_ids)s::text[]) WITH ORDINALITY AS u("
    + "".join(f"{f.name}, " for f in FIELDS)
    + "request_id, item)"
    " CROSS JOIN LATERAL (SELECT e.operation, e.created_at, "
    + ", ".join(f"e.{f.name}" for f in FIELDS)
    + " FROM pgportfolio.event_log AS e"
    " WHERE e.portfolio_id = %(portfolio_id)s AND e.request_id = u.request_id LIMIT 1) AS e"
    " WHERE e.operation = 'apply_fill'"
    + "".join(f" AND ({f.match.format(name=f.name)})" for f in FIELDS)
)


# --- rows and chunks ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row not applied: refused by this importer (``sqlstate`` None) or by the ledger."""

    line: int
    message: str
    sqlstate: str | None = None


@dataclass(slots=True)
class Chunk:
    """Consecutive rows of the file: the good ones as columns (one list per field, in
    FIELDS order), and the problems found in the others."""

    lines: list[int] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    values: list[list[Any]] = field(default_factory=lambda: [[] for _ in FIELDS])
    problems: list[RowProblem] = field(default_factory=list)
    first_line: int = 0
    last_line: int = 0
    # The arguments of apply_fills_arrays for every good row, written by the reader thread.
    params: dict[str, Any] | None = None

    @property
    def rows(self) -> int:
        return len(self.lines) + len(self.problems)

    def add(self, line: int, request_id: str, values: Sequence[Any]) -> None:
        self.lines.append(line)
        self.request_ids.append(request_id)
        for column, value in zip(self.values, values, strict=True):
            column.append(value)

    def without(self, positions: Sequence[int]) -> Chunk:
        """The other rows, in order."""
        drop = set(positions)
        keep = [i for i in range(len(self.lines)) if i not in drop]
        part = Chunk(first_line=self.first_line, last_line=self.last_line)
        part.lines = [self.lines[i] for i in keep]
        part.request_ids = [self.request_ids[i] for i in keep]
        part.values = [[column[i] for i in keep] for column in self.values]
        return part

    def arguments(self, portfolio_id: int) -> dict[str, Any]:
        params: dict[str, Any] = {
            f.name: f.literal(column) for f, column in zip(FIELDS, self.values, strict=True)
        }
        params["request_ids"] = _quoted_all(self.request_ids)
        params["portfolio_id"] = portfolio_id
        params["count"] = len(self.lines)
        return params


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
    # Of the duplicates, those found by the look-up before sending (never sent).
    skipped: int = 0
    # Where the time went: waiting for the ledger's answers (applying, looking up,
    # committing), and waiting for the reader thread (parsing was the bottleneck).
    seconds_in_ledger: float = 0.0
    seconds_waiting_for_rows: float = 0.0

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


def read_chunks(path: Path, chunk_size: int) -> Iterator[Chunk]:
    """The file's rows, parsed, in chunks of ``chunk_size`` rows, in file order."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise ImportFileError(f"{path}: empty file (a header line is required)")
            yield from _chunks(path, reader, [name.strip() for name in header], chunk_size)
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"{path}: not UTF-8 text (after line {reader.line_num}): {exc.reason}"
            ) from exc


def _chunks(path: Path, reader: Any, header: list[str], chunk_size: int) -> Iterator[Chunk]:
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ImportFileError(f"{path}: missing column(s) {', '.join(missing)} in the header")
    width = len(header)
    # Per field: its cell's index (None: no such column), name, parser and default.
    fields = [
        (header.index(f.name) if f.name in header else None, f.name, f.parse, f.default)
        for f in FIELDS
    ]
    ids = [header.index(name) for name in _ID_COLUMNS if name in header]
    chunk, records = Chunk(), 0
    for cells in reader:
        if not cells:
            continue  # a blank line
        line = reader.line_num
        if records == 0:
            chunk.first_line = line
        chunk.last_line = line
        problem = _parse(cells, width, fields, ids, chunk, line)
        if problem is not None:
            chunk.problems.append(RowProblem(line, problem))
        records += 1
        if records == chunk_size:
            yield chunk
            chunk, records = Chunk(), 0
    if records:
        yield chunk


def _parse(
    cells: list[str],
    width: int,
    fields: list[tuple[int | None, str, Callable[[str], Any], Any]],
    ids: list[int],
    chunk: Chunk,
    line: int,
) -> str | None:
    """Add one record to the chunk, or say what is wrong with it."""
    count = len(cells)
    if count > width:
        return "more cells than the header has columns"
    values = []
    for index, name, parse, default in fields:
        cell = cells[index].strip() if index is not None and index < count else ""
        if not cell:
            if default is _REQUIRED:
                return f"{name} is empty"
            values.append(default)
            continue
        try:
            values.append(parse(cell))
        except _Refused as exc:
            return f"{name} {exc}"
    request_id = ""
    for index in ids:
        if index < count:
            request_id = cells[index].strip()
            if request_id:
                break
    if not request_id:
        return "no request_id or execution_id: the row could not be idempotent"
    if len(request_id) > _ID_LIMIT:
        return f"request id longer than {_ID_LIMIT} characters"
    if "\x00" in request_id:
        return "request id contains a NUL character"
    chunk.add(line, request_id, values)
    return None


# --- the import ---------------------------------------------------------------------------


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

    def prepare(chunk: Chunk) -> Chunk:  # in the reader thread
        if not dry_run and not chunk.problems:
            chunk.params = chunk.arguments(portfolio_id)
        return chunk

    with (
        psycopg.connect(conninfo) if not dry_run else _NoConnection() as conn,
        contextlib.closing(_read_ahead(read_chunks(path, chunk_size), prepare)) as chunks,
    ):
        look_up = True  # whether the log may hold some of the next chunk's ids
        while True:
            waited = time.perf_counter()
            chunk = next(chunks, None)
            report.seconds_waiting_for_rows += time.perf_counter() - waited
            if chunk is None:
                break
            if chunk.problems:
                report.problems.extend(chunk.problems)
                if not dry_run:
                    report.refused_lines = (chunk.first_line, chunk.last_line)
                    break
            elif dry_run:
                report.rows += len(chunk.lines)
            else:
                asked = time.perf_counter()
                refused, found = _apply_chunk(conn, portfolio_id, chunk, report, look_up)
                report.seconds_in_ledger += time.perf_counter() - asked
                if refused:
                    report.problems.extend(refused)
                    report.refused_lines = (chunk.first_line, chunk.last_line)
                    break
                look_up = found > 0
            if not chunk.problems:
                report.chunks += 1
            if progress is not None:
                progress(chunk.rows)
    report.seconds = time.perf_counter() - started
    return report


def _read_ahead(
    chunks: Iterator[Chunk], prepare: Callable[[Chunk], Chunk]
) -> Generator[Chunk, None, None]:
    """The chunks, parsed and prepared ahead in a thread, in order: the parsing of the
    next chunks overlaps the ledger's work on this one (psycopg releases the GIL while
    it waits)."""
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_READ_AHEAD - 1)
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
                if not offer(("chunk", prepare(chunk))):
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


def _already_in_ledger(conn: psycopg.Connection[Any], params: dict[str, Any]) -> list[int]:
    """The positions (from 0) of the chunk's rows that the ledger would answer as
    duplicates. A row whose id the log holds with other values is not among them: it is
    sent, and refused (PF005)."""
    return sorted(item - 1 for (item,) in conn.execute(_IN_LEDGER, params))


def _apply_chunk(
    conn: psycopg.Connection[Any],
    portfolio_id: int,
    chunk: Chunk,
    report: ImportReport,
    look_up: bool,
) -> tuple[list[RowProblem], int]:
    """One chunk in one transaction: committed if the ledger took every element (applied
    or already there), rolled back otherwise. Returns the refused elements and how many
    rows were found in the log (by the look-up or by the ledger)."""
    count = len(chunk.lines)
    params = chunk.params or chunk.arguments(portfolio_id)
    try:
        found = _already_in_ledger(conn, params) if look_up else []
        send = chunk
        if found:
            send = chunk.without(found)
            params = send.arguments(portfolio_id)
        rows = conn.execute(_APPLY, params).fetchall() if send.lines else []
    except BaseException:
        conn.rollback()
        raise
    refused = [
        RowProblem(
            send.lines[item - 1],
            message if not detail else f"{message} ({detail})",
            sqlstate,
        )
        for item, _duplicate, sqlstate, message, detail in rows
        if sqlstate is not None
    ]
    if refused:
        conn.rollback()
        return refused, len(found)
    try:
        conn.commit()
    except psycopg.OperationalError as exc:
        exc.add_note(
            f"The commit of lines {chunk.first_line}-{chunk.last_line} may or may not have "
            "happened; running the same import again is safe (request ids)."
        )
        raise
    duplicates = len(found) + sum(1 for row in rows if row[1])
    report.rows += count
    report.duplicates += duplicates
    report.skipped += len(found)
    report.applied += count - duplicates
    return [], duplicates


class _NoConnection:
    """The connection of a dry run: there is none."""

    def __enter__(self) -> Any:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
