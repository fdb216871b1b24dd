"""``pgportfolio verify``: ``verify_portfolio`` for every portfolio of a database.

After a restore from a backup, on a standby, after a failover: every portfolio is rebuilt
from its event log and compared with its stored state, and its event chain is checked.
Read-only, so it runs on a standby too, and needs only the analyst role.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg


@dataclass
class Verification:
    server: str  # host:port and whether it is a primary or a standby
    portfolios: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (portfolio, check)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_all(dsn: str) -> Verification:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT inet_server_addr()::text || ':' || inet_server_port(),"
            " CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END"
        ).fetchone()
        server = "local socket" if row is None or row[0] is None else f"{row[0]} ({row[1]})"
        result = Verification(server)
        ids = conn.execute(
            "SELECT portfolio_id FROM pgportfolio.portfolio_summary ORDER BY portfolio_id"
        ).fetchall()
        for (portfolio,) in ids:
            result.portfolios += 1
            failed = conn.execute(
                "SELECT check_name FROM pgportfolio.verify_portfolio(%s) WHERE NOT ok",
                (portfolio,),
            ).fetchall()
            result.failures.extend((portfolio, name) for (name,) in failed)
    return result
