"""``migrations/`` and ``sql/`` must build the same schema.

One database is built by the migration runner, one by ``install_from_sql``; their
catalogs for schema ``pgportfolio`` are read into sorted lists of rows and compared.
A negative control proves that the comparison sees small differences.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Any

import psycopg
import pytest

from pgportfolio.migrate import migrate
from pgportfolio.schema import install_from_sql
from tests.conftest import DatabaseFactory, dbname_of

SCHEMA = "pgportfolio"

Rows = list[tuple[Any, ...]]
Snapshot = dict[str, tuple[tuple[str, ...], Rows]]

# An aclitem[] as a sorted text array, so that grant order does not matter.
_ACL = "(SELECT array_agg(a::text ORDER BY a::text) FROM unnest({col}) AS a)"

# Each query returns rows whose first column identifies the object; %(schema)s is bound.
CATALOG_QUERIES: dict[str, str] = {
    "schema": f"""
        SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner,
               {_ACL.format(col="n.nspacl")} AS acl,
               obj_description(n.oid, 'pg_namespace') AS comment
        FROM pg_namespace AS n WHERE n.nspname = %(schema)s
    """,
    "relations": f"""
        SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner,
               {_ACL.format(col="c.relacl")} AS acl,
               obj_description(c.oid, 'pg_class') AS comment,
               c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
               c.reloptions::text AS reloptions, c.relreplident,
               am.amname AS access_method
        FROM pg_class AS c
        LEFT JOIN pg_am AS am ON am.oid = c.relam
        WHERE c.relnamespace = %(schema)s::regnamespace
    """,
    "columns": f"""
        SELECT c.relname || '.' || a.attname AS column_name,
               c.relkind,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position,
               format_type(a.atttypid, a.atttypmod) AS type,
               a.attnotnull AS not_null,
               pg_get_expr(d.adbin, d.adrelid) AS default,
               a.attidentity AS identity,
               a.attgenerated AS generated,
               co.collname AS collation,
               a.attstattarget AS stattarget,
               a.attstorage AS storage,
               col_description(c.oid, a.attnum) AS comment,
               {_ACL.format(col="a.attacl")} AS acl
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation AS co ON co.oid = a.attcollation AND a.attcollation <> 0
        WHERE c.relnamespace = %(schema)s::regnamespace
          AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "constraints": """
        SELECT coalesce(c.relname, t.typname) || '.' || k.conname AS constraint_name,
               k.contype, pg_get_constraintdef(k.oid, true) AS definition,
               k.convalidated, k.connoinherit,
               obj_description(k.oid, 'pg_constraint') AS comment
        FROM pg_constraint AS k
        LEFT JOIN pg_class AS c ON c.oid = k.conrelid
        LEFT JOIN pg_type AS t ON t.oid = k.contypid
        WHERE k.connamespace = %(schema)s::regnamespace
    """,
    "indexes": """
        SELECT i.relname AS index_name, pg_get_indexdef(x.indexrelid) AS definition,
               x.indisprimary, x.indisunique, x.indisclustered, x.indisreplident,
               x.indisvalid, obj_description(i.oid, 'pg_class') AS comment
        FROM pg_index AS x
        JOIN pg_class AS i ON i.oid = x.indexrelid
        WHERE i.relnamespace = %(schema)s::regnamespace
    """,
    "functions": f"""
        SELECT p.oid::regprocedure::text AS signature,
               p.prokind, l.lanname AS language,
               pg_get_function_arguments(p.oid) AS arguments,
               pg_get_function_result(p.oid) AS result,
               p.prosrc, p.proconfig, p.prosecdef, p.provolatile, p.proparallel,
               p.proisstrict, p.proleakproof, p.procost, p.prorows,
               pg_get_userbyid(p.proowner) AS owner,
               {_ACL.format(col="p.proacl")} AS acl,
               obj_description(p.oid, 'pg_proc') AS comment
        FROM pg_proc AS p
        JOIN pg_language AS l ON l.oid = p.prolang
        WHERE p.pronamespace = %(schema)s::regnamespace
    """,
    "views": """
        SELECT c.relname AS view_name, c.relkind, pg_get_viewdef(c.oid, true) AS definition
        FROM pg_class AS c
        WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('v', 'm')
    """,
    "rules": """
        SELECT c.relname || '.' || r.rulename AS rule_name,
               pg_get_ruledef(r.oid, true) AS definition, r.ev_enabled
        FROM pg_rewrite AS r
        JOIN pg_class AS c ON c.oid = r.ev_class
        WHERE c.relnamespace = %(schema)s::regnamespace AND r.rulename <> '_RETURN'
    """,
    "triggers": """
        SELECT c.relname || '.' || t.tgname AS trigger_name,
               pg_get_triggerdef(t.oid, true) AS definition, t.tgenabled,
               obj_description(t.oid, 'pg_trigger') AS comment
        FROM pg_trigger AS t
        JOIN pg_class AS c ON c.oid = t.tgrelid
        WHERE c.relnamespace = %(schema)s::regnamespace AND NOT t.tgisinternal
    """,
    "policies": """
        SELECT c.relname || '.' || p.polname AS policy_name, p.polcmd, p.polpermissive,
               (SELECT array_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END
                                 ORDER BY 1)
                FROM unnest(p.polroles) AS r) AS roles,
               pg_get_expr(p.polqual, p.polrelid) AS using_expr,
               pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
        FROM pg_policy AS p
        JOIN pg_class AS c ON c.oid = p.polrelid
        WHERE c.relnamespace = %(schema)s::regnamespace
    """,
    "types": f"""
        SELECT t.typname, t.typtype, t.typcategory,
               format_type(t.typbasetype, t.typtypmod) AS base_type, t.typnotnull,
               t.typdefault,
               (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                FROM pg_enum AS e WHERE e.enumtypid = t.oid) AS enum_labels,
               pg_get_userbyid(t.typowner) AS owner,
               {_ACL.format(col="t.typacl")} AS acl,
               obj_description(t.oid, 'pg_type') AS comment
        FROM pg_type AS t
        WHERE t.typnamespace = %(schema)s::regnamespace
    """,
    "sequences": """
        SELECT c.relname AS sequence_name, format_type(s.seqtypid, NULL) AS type,
               s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
               (SELECT d.refobjid::regclass::text || '.' || a.attname || ' ' || d.deptype::text
                FROM pg_depend AS d
                JOIN pg_attribute AS a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
               ) AS owned_by
        FROM pg_sequence AS s
        JOIN pg_class AS c ON c.oid = s.seqrelid
        WHERE c.relnamespace = %(schema)s::regnamespace
    """,
    "default_privileges": f"""
        SELECT pg_get_userbyid(d.defaclrole) || ' ' || d.defaclobjtype::text AS role_and_type,
               {_ACL.format(col="d.defaclacl")} AS acl
        FROM pg_default_acl AS d
        WHERE d.defaclnamespace = %(schema)s::regnamespace
    """,
    "extension_members": """
        SELECT e.extname || ': ' || pg_describe_object(d.classid, d.objid, d.objsubid) AS member
        FROM pg_depend AS d
        JOIN pg_extension AS e ON e.oid = d.refobjid
        WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
          AND pg_describe_object(d.classid, d.objid, d.objsubid) LIKE '%%' || %(schema)s || '.%%'
    """,
}

# Categories that must not be empty for this schema: guards against a query that
# silently matches nothing in both databases and so always "agrees".
MUST_HAVE_ROWS = (
    "schema",
    "relations",
    "columns",
    "constraints",
    "indexes",
    "functions",
    "views",
    "triggers",
    "types",
    "sequences",
)


def _sort_key(row: tuple[Any, ...]) -> str:
    return repr(row)


def catalog_snapshot(conninfo: str, schema: str = SCHEMA) -> Snapshot:
    """The catalog of ``schema`` as ``{category: (column names, sorted rows)}``."""
    snapshot: Snapshot = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET search_path = pg_catalog")
        for category, query in CATALOG_QUERIES.items():
            cursor = conn.execute(query.encode(), {"schema": schema})
            columns = tuple(column.name for column in cursor.description or ())
            rows = [tuple(row) for row in cursor.fetchall()]
            snapshot[category] = (columns, sorted(rows, key=_sort_key))
    return snapshot


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _diff_rows(
    columns: tuple[str, ...], left: tuple[Any, ...], right: tuple[Any, ...], names: tuple[str, str]
) -> list[str]:
    """Field by field: short values side by side, multi-line ones (function bodies,
    view definitions) as a unified diff."""
    lines: list[str] = []
    for column, a, b in zip(columns[1:], left[1:], right[1:], strict=True):
        if a == b:
            continue
        a_text, b_text = _show(a), _show(b)
        if "\n" in a_text or "\n" in b_text:
            lines.append(f"    {column}:")
            lines.extend(
                f"      {line}"
                for line in difflib.unified_diff(
                    a_text.splitlines(),
                    b_text.splitlines(),
                    fromfile=names[0],
                    tofile=names[1],
                    lineterm="",
                    n=2,
                )
            )
        else:
            lines.append(f"    {column}: {a_text!r} in {names[0]}")
            lines.append(f"    {' ' * len(column)}  {b_text!r} in {names[1]}")
    return lines


def _group(rows: Rows) -> dict[str, Rows]:
    groups: dict[str, Rows] = defaultdict(list)
    for row in rows:
        groups[str(row[0])].append(row)
    return groups


def diff_catalogs(
    left: Snapshot, right: Snapshot, left_name: str = "left", right_name: str = "right"
) -> str:
    """A readable report of how two snapshots differ, per category; ``""`` when equal."""
    names = (left_name, right_name)
    out: list[str] = []
    for category in sorted(left.keys() | right.keys()):
        left_columns, left_rows = left.get(category, ((), []))
        right_columns, right_rows = right.get(category, ((), []))
        if left_columns == right_columns and left_rows == right_rows:
            continue
        out.append(f"=== {category} ===")
        if left_columns != right_columns:
            out.append(
                f"  columns differ: {left_columns} in {left_name}, {right_columns} in {right_name}"
            )
            continue
        by_left, by_right = _group(left_rows), _group(right_rows)
        for identity in sorted(by_left.keys() | by_right.keys()):
            mine, theirs = by_left.get(identity, []), by_right.get(identity, [])
            if mine == theirs:
                continue
            if not theirs:
                out.append(f"  only in {left_name}: {identity}")
            elif not mine:
                out.append(f"  only in {right_name}: {identity}")
            elif len(mine) == 1 and len(theirs) == 1:
                out.append(f"  differs: {identity}")
                out.extend(_diff_rows(left_columns, mine[0], theirs[0], names))
            else:
                out.append(f"  differs: {identity}")
                out.extend(f"    {left_name}: {row!r}" for row in mine)
                out.extend(f"    {right_name}: {row!r}" for row in theirs)
    return "\n".join(out)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def migrated_db(database_factory: DatabaseFactory) -> str:
    conninfo = database_factory()
    migrate(conninfo)
    return conninfo


@pytest.fixture(scope="module")
def installed_db(database_factory: DatabaseFactory) -> str:
    conninfo = database_factory()
    install_from_sql(conninfo)
    return conninfo


# --------------------------------------------------------------------------- tests


def test_snapshot_sees_the_schema(migrated_db: str) -> None:
    snapshot = catalog_snapshot(migrated_db)
    empty = [category for category in MUST_HAVE_ROWS if not snapshot[category][1]]
    assert not empty, f"catalog queries found nothing for: {', '.join(empty)}"
    signatures = {row[0] for row in snapshot["functions"][1]}
    assert "pgportfolio.verify_portfolio(bigint)" in signatures
    assert any(row[0] == "mutation_result.portfolio_id" for row in snapshot["columns"][1])


def test_migrations_and_sql_build_the_same_schema(migrated_db: str, installed_db: str) -> None:
    diff = diff_catalogs(
        catalog_snapshot(migrated_db),
        catalog_snapshot(installed_db),
        "migrations/",
        "sql/",
    )
    assert not diff, (
        "migrations/ and sql/ build different schemas; add a migration for what sql/ "
        "changed (or fix sql/):\n" + diff
    )


# Tiny changes, each to be caught by a different part of the comparison.
DRIFTS: dict[str, tuple[str, str]] = {
    "comment": (
        "COMMENT ON FUNCTION pgportfolio.verify_portfolio(bigint) IS 'changed'",
        "changed",
    ),
    "column": ("ALTER TABLE pgportfolio.positions ADD COLUMN note text", "positions.note"),
    "nullability": (
        "ALTER TABLE pgportfolio.portfolio_access ALTER COLUMN granted_at DROP NOT NULL",
        "portfolio_access.granted_at",
    ),
    "default": (
        "ALTER TABLE pgportfolio.market_prices ALTER COLUMN version SET DEFAULT 2",
        "market_prices.version",
    ),
    "table-acl": (
        "GRANT SELECT ON pgportfolio.positions TO pgportfolio_analyst",
        "pgportfolio_analyst=r/",
    ),
    "function-acl": (
        "REVOKE EXECUTE ON FUNCTION pgportfolio.verify_portfolio(bigint) FROM pgportfolio_analyst",
        "verify_portfolio",
    ),
    "proconfig": (
        "ALTER FUNCTION pgportfolio._check_symbol(text) SET work_mem = '1MB'",
        "work_mem=1MB",
    ),
    "volatility": ("ALTER FUNCTION pgportfolio._acting_role() VOLATILE", "_acting_role"),
    "body": (
        "CREATE OR REPLACE FUNCTION pgportfolio._acting_role() RETURNS name LANGUAGE sql STABLE"
        " SET search_path = pg_catalog, pg_temp AS $$ SELECT session_user $$",
        "SELECT session_user",
    ),
    "owner": ("ALTER VIEW pgportfolio.lock_waits OWNER TO pgportfolio_trader", "lock_waits"),
    "constraint": (
        "ALTER TABLE pgportfolio.events DROP CONSTRAINT events_fill_shape",
        "events.events_fill_shape",
    ),
    "domain-constraint": (
        "ALTER DOMAIN pgportfolio.positive_number DROP CONSTRAINT positive_number_check",
        "positive_number.positive_number_check",
    ),
    "index": (
        "CREATE INDEX events_symbol_idx ON pgportfolio.events (symbol)",
        "events_symbol_idx",
    ),
    "view": (
        "CREATE OR REPLACE VIEW pgportfolio.instrument_list AS SELECT i.symbol::text AS symbol,"
        " i.multiplier, i.description, i.updated_at FROM pgportfolio.instruments AS i"
        " WHERE i.multiplier <> 7",
        "<> 7",
    ),
    "trigger": (
        "ALTER TABLE pgportfolio.events DISABLE TRIGGER events_append_only",
        "events.events_append_only",
    ),
    "type": (
        "ALTER TYPE pgportfolio.mutation_result ADD ATTRIBUTE note text",
        "mutation_result.note",
    ),
    "schema-acl": ("GRANT USAGE ON SCHEMA pgportfolio TO PUBLIC", "=U/"),
    "default-privileges": (
        "ALTER DEFAULT PRIVILEGES FOR ROLE pgportfolio_owner IN SCHEMA pgportfolio"
        " GRANT SELECT ON TABLES TO pgportfolio_analyst",
        "default_privileges",
    ),
}


@pytest.fixture(scope="module")
def migrated_template(migrated_db: str) -> str:
    """The name of the migrated database, cloned for the controls (so that they do not
    depend on sql/ installing)."""
    return dbname_of(migrated_db)


def test_an_identical_copy_compares_equal(
    database_factory: DatabaseFactory, migrated_db: str, migrated_template: str
) -> None:
    """The comparison is not fooled by oids, creation order or other noise."""
    copy = database_factory(template=migrated_template)
    assert diff_catalogs(catalog_snapshot(migrated_db), catalog_snapshot(copy)) == ""


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_comparison_reports_a_tiny_difference(
    database_factory: DatabaseFactory,
    migrated_db: str,
    migrated_template: str,
    drift: str,
) -> None:
    statement, expected_in_diff = DRIFTS[drift]
    drifted = database_factory(template=migrated_template)
    with psycopg.connect(drifted, autocommit=True) as conn:
        conn.execute(statement.encode())

    diff = diff_catalogs(catalog_snapshot(migrated_db), catalog_snapshot(drifted), "a", "b")

    assert diff, f"the comparison missed: {statement}"
    assert expected_in_diff in diff, diff


def test_diff_is_readable() -> None:
    columns = ("signature", "prosrc", "comment")
    left: Snapshot = {"functions": (columns, [("f(int)", "SELECT 1\nFROM x", "old")])}
    right: Snapshot = {
        "functions": (columns, [("f(int)", "SELECT 2\nFROM x", "old"), ("g()", "", None)])
    }

    diff = diff_catalogs(left, right, "migrations/", "sql/")

    assert "=== functions ===" in diff
    assert "only in sql/: g()" in diff
    assert "differs: f(int)" in diff
    assert "-SELECT 1" in diff
    assert "+SELECT 2" in diff
    assert "comment" not in diff  # unchanged fields are not shown
    assert diff_catalogs(left, left) == ""
