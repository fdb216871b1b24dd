"""``pgportfolio top``: a live view of the ledger for whoever runs the database.

Refreshed every second: lock waits (the lock_waits view), the busiest portfolios with
event rates from their version deltas, and what the server's sessions wait for. Needs
only the analyst role.
"""

from __future__ import annotations

import time
from typing import Any

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

    def render(self) -> Group:
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

        events = Table(title="server sessions by wait event", title_justify="left")
        for column in ("state", "wait type", "wait event", "sessions"):
            events.add_column(column)
        for state, kind, event, sessions in self._rows("server_wait_events"):
            events.add_row(str(state), kind, event, str(sessions))
        return Group(
            f"events/s (top {len(rated)} portfolios): {total:.1f}", portfolios, waits, events
        )


def run_top(dsn: str, *, interval: float = 1.0, iterations: int | None = None) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        view = TopView(conn)
        with Live(view.render(), refresh_per_second=4, screen=iterations is None) as live:
            count = 0
            while iterations is None or count < iterations:
                time.sleep(interval)
                live.update(view.render())
                count += 1
    return 0
