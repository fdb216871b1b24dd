"""Where the SQL lives, and how to install it.

``sql/`` is the desired state, one file per object or area, applied in name order in
one transaction. ``migrations/`` holds the numbered steps that bring a database there;
a test proves that both build the same catalog.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

_PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = _PACKAGE_DIR.parent.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"none of {', '.join(map(str, candidates))} exists")


def migrations_dir() -> Path:
    """The migrations shipped in the wheel, else those of the source checkout."""
    return _first_existing(_PACKAGE_DIR / "_migrations", _SOURCE_ROOT / "migrations")


def sql_dir() -> Path:
    """The desired-state SQL shipped in the wheel, else that of the source checkout."""
    return _first_existing(_PACKAGE_DIR / "_sql", _SOURCE_ROOT / "sql")


def sql_files(directory: Path | None = None) -> list[Path]:
    return sorted((directory or sql_dir()).glob("*.sql"))


def desired_state_sql(directory: Path | None = None) -> str:
    """All of ``sql/`` as one script, in load order."""
    return "\n".join(path.read_text(encoding="utf-8") for path in sql_files(directory))


def install_from_sql(conninfo: str, directory: Path | None = None) -> None:
    """Build the schema from ``sql/`` in one transaction (tests and the drift check)."""
    with psycopg.connect(conninfo, autocommit=False) as conn:
        conn.execute(desired_state_sql(directory).encode())  # bytes: the script is not a template
        conn.commit()
