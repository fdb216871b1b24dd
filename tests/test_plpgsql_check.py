"""plpgsql_check reads the PL/pgSQL bodies that sqlfluff cannot: no function may
report an error or a warning."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.debian_extensions

CHECK_SCHEMA = """
SELECT p.oid::regprocedure::text, r.level, r.message, r.lineno, r.statement
FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
JOIN pg_language AS l ON l.oid = p.prolang
CROSS JOIN LATERAL plpgsql_check_function_tb(
    p.oid,
    CASE WHEN p.prorettype = 'trigger'::regtype THEN 'pgportfolio.events'::regclass ELSE 0 END,
    extra_warnings => true,
    other_warnings => true
) AS r
WHERE n.nspname = %s AND l.lanname = 'plpgsql'
ORDER BY 1, 4
"""


def check_schema(conninfo: str, schema: str) -> list[tuple[str, str, str, int, str]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(CHECK_SCHEMA, (schema,)).fetchall()


def test_every_plpgsql_function_passes_plpgsql_check(db: str) -> None:
    with psycopg.connect(db) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
            " WHERE p.pronamespace = 'pgportfolio'::regnamespace AND l.lanname = 'plpgsql'"
        ).fetchone()
    assert count is not None
    assert count[0] >= 10
    assert check_schema(db, "pgportfolio") == []


def test_plpgsql_check_reports_a_broken_function(db: str) -> None:
    # Negative control: the check above must be able to fail.
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA broken")
        conn.execute(
            "CREATE FUNCTION broken.f() RETURNS numeric LANGUAGE plpgsql AS"
            " $$ BEGIN RETURN (SELECT no_such_column FROM pgportfolio.portfolios LIMIT 1); END $$"
        )
    findings = check_schema(db, "broken")
    assert any(level == "error" for _, level, *_ in findings)
