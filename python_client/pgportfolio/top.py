"""``pgportfolio top``: a live view of the ledger for whoever runs the database.

Refreshed every second: who holds a portfolio locked and for how long (a session idle in
a transaction holds every other caller of that portfolio off), lock waits (the lock_waits
view), the busiest portfolios with event rates from their version deltas, and what the
server's sessions wait for, and replication lag (each standby's on a primary, its own on
a standby). Needs
only the analyst role. On a terminal, ``q`` quits.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import psycopg
from rich.console import Group
from rich.live import Live
from rich.table import Table

from pgportfolio.queries import query


class TopView:
    def __init__(self, conn: psycopg.Connection[Any], limit: int = 15) -> None:
        self.conn = conn
        self.limit = limit
        self._last: dict[int, tuple[int, float]] = {}

    def _rows(self, name: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(query(name), params or {}).fetchall()

    def render(self, footer: str = "") -> Group:
        now = time.monotonic()
        portfolios = Table(title="busiest portfolios", title_justify="left")
        for column in ("portfolio", "name", "version", "events/s", "updated"):
            portfolios.add_column(column)
        rated = []
        for pid, name, version, updated_at in self._rows("recent_portfolios", {"limit": 200}):
            previous = self._last.get(pid)
            rate = (
                (version - previous[0]) / (now - previous[1])
                if previous and now > previous[1]
                else 0.0
            )
            self._last[pid] = (version, now)
            rated.append((rate, pid, name, version, updated_at))
        rated.sort(key=lambda r: (-r[0], -r[3]))
        for rate, pid, name, version, updated_at in rated[: self.limit]:
            portfolios.add_row(
                str(pid), name, str(version), f"{rate:.1f}", f"{updated_at:%H:%M:%S}"
            )
        total = sum(r[0] for r in rated)

        waits = Table(title="lock waits", title_justify="left")
        for column in ("pid", "role", "relation", "mode", "waiting s", "blocked by", "query"):
            waits.add_column(column)
        for pid, role, relation, mode, seconds, blockers, text in self._rows("current_lock_waits"):
            waits.add_row(
                str(pid),
                str(role),
                str(relation),
                str(mode),
                f"{float(seconds or 0):.3f}",
                ",".join(map(str, blockers or [])),
                (text or "")[:60],
            )

        holders = Table(title="portfolio locks held", title_justify="left")
        for column in ("portfolio", "pid", "role", "state", "held s", "idle s", "query"):
            holders.add_column(column)
        for pid, holder, role, state, held, idle, text in self._rows("portfolio_lock_holders"):
            holders.add_row(
                str(pid),
                str(holder),
                str(role),
                str(state),
                f"{float(held or 0):.1f}",
                "" if idle is None else f"{float(idle):.1f}",
                (text or "")[:60],
            )

        events = Table(title="server sessions by wait event", title_justify="left")
        for column in ("state", "wait type", "wait event", "sessions"):
            events.add_column(column)
        for state, kind, event, sessions in self._rows("server_wait_events"):
            events.add_row(str(state), kind, event, str(sessions))
        return Group(
            f"events/s (top {len(rated)} portfolios): {total:.1f}{footer}",
            portfolios,
            holders,
            waits,
            events,
            self._replication(),
        )

    def _replication(self) -> Table:
        """Each standby's lag seen from a primary, or a standby's own; empty on a server
        without replication."""
        table = Table(title="replication", title_justify="left")
        for column in ("standby", "seen from", "state", "sync", "unflushed", "unreplayed",
                       "flush lag", "replay lag"):  # fmt: skip
            table.add_column(column)
        for standby, seen_from, state, sync, unflushed, unreplayed, flush, replay in self._rows(
            "replication_lag"
        ):
            table.add_row(
                standby,
                seen_from,
                str(state),
                sync or "",
                _bytes(unflushed),
                _bytes(unreplayed),
                _interval(flush),
                _interval(replay),
            )
        return table


def _bytes(value: Any) -> str:
    return "" if value is None else f"{int(value):,} B"


def _interval(value: Any) -> str:
    return "" if value is None else f"{value.total_seconds():.3f} s"


@contextlib.contextmanager
def _quit_key(stream: TextIO) -> Iterator[Callable[[float], bool] | None]:
    """On a terminal: a function that waits up to its argument in seconds and says
    whether ``q`` was pressed. Keys arrive one by one (cbreak mode: no Enter needed,
    Ctrl-C still interrupts) and the terminal is restored afterwards. Elsewhere: None."""
    try:
        import termios
        import tty
    except ImportError:  # not POSIX: Ctrl-C is the way out
        yield None
        return
    if not stream.isatty():
        yield None
        return
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def pressed_q(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready and b"q" in os.read(fd, 64).lower():
                return True
        return False

    try:
        yield pressed_q
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_top(
    dsn: str,
    *,
    interval: float = 1.0,
    iterations: int | None = None,
    keys: TextIO | None = None,
) -> int:
    """Refresh every ``interval`` seconds, ``iterations`` times (default: until ``q``
    on a terminal, or Ctrl-C). ``keys`` is where ``q`` is read (default: stdin)."""
    if not interval > 0:
        raise ValueError(f"interval must be positive, not {interval}")
    if iterations is not None and iterations < 1:
        raise ValueError(f"iterations must be positive, not {iterations}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        view = TopView(conn)
        with _quit_key(keys or sys.stdin) as pressed_q:
            footer = "   (q quits)" if pressed_q else ""
            # The first render runs before the screen is taken, so that an error (no
            # schema, no privilege) is printed on the normal screen.
            first = view.render(footer)
            with Live(first, refresh_per_second=4, screen=iterations is None) as live:
                count = 0
                while iterations is None or count < iterations:
                    if pressed_q is None:
                        time.sleep(interval)
                    elif pressed_q(interval):
                        break
                    live.update(view.render(footer))
                    count += 1
    return 0
