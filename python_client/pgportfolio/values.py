"""Money and quantities are ``Decimal``: a float is refused before anything is sent.

Range, sign and decimal places are checked by the database (22023), so there is one
rule and one error; the client refuses only what it alone can see: the Python type.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

from psycopg.types.json import Jsonb

from pgportfolio.errors import InvalidInput

_ACCEPTED = "Money and quantities are a decimal.Decimal or an int"


def as_decimal(name: str, value: object) -> Decimal:
    """``value`` as a Decimal. ``int`` is exact and accepted; ``float`` and ``bool`` are not."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float):
        raise InvalidInput(
            f"{name} must be a Decimal, not float ({value!r}): floats are inexact",
            hint=f"{_ACCEPTED}: Decimal('{value}') if that is the exact value meant.",
        )
    raise InvalidInput(
        f"{name} must be a Decimal, not {type(value).__name__}", hint=f"{_ACCEPTED}."
    )


def optional_decimal(name: str, value: object) -> Decimal | None:
    return None if value is None else as_decimal(name, value)


def as_text(name: str, value: object) -> str:
    """A str that PostgreSQL text can hold: no NUL, valid UTF-8 (no lone surrogates).
    What else is allowed is the database's rule."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a str, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInput(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{name} is not valid Unicode text: {exc.reason}") from None
    return value


def optional_text(name: str, value: object) -> str | None:
    return None if value is None else as_text(name, value)


def as_aware_time(name: str, value: object) -> datetime:
    """A datetime with a time zone. A naive one is refused: the server would read it in
    its session's TimeZone, which the caller may not know."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{name} must be timezone-aware, got the naive {value.isoformat()}",
            hint="Use datetime.now(timezone.utc) or attach a tzinfo.",
        )
    return value


def optional_aware_time(name: str, value: object) -> datetime | None:
    return None if value is None else as_aware_time(name, value)


def as_day(name: str, value: object) -> date:
    """A calendar day: a ``date``, not a ``datetime`` (whose time would be dropped)."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidInput(f"{name} must be a date, not {type(value).__name__}")
    return value


_BIGINT = range(-(2**63), 2**63)


def as_id(name: str, value: object) -> int:
    """An int in PostgreSQL's bigint range (ids and versions)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an int, not {type(value).__name__}")
    if value not in _BIGINT:
        raise InvalidInput(f"{name} is out of range for bigint: {value}")
    return value


def optional_id(name: str, value: object) -> int | None:
    return None if value is None else as_id(name, value)


def fits_in_batch(value: Decimal | None) -> bool:
    """Whether PostgreSQL can read ``value`` as numeric inside a batch's array: none,
    finite values of sane magnitude, NaN and the infinities (which the ledger then refuses,
    for that element alone). -NaN, sNaN and absurd exponents would fail the whole batch."""
    if value is None:
        return True
    if value.is_finite():
        return -1000 < value.adjusted() < 1000
    return str(value) in ("NaN", "Infinity", "-Infinity")


# A batch's columns travel as PostgreSQL array literals written here, one text parameter
# each, which the query casts to its array type: psycopg's list adapters look at every
# element in Python (about 7.5 µs per fill of a batch of 50, nine columns; these 1.2).


def number_array(values: list[Decimal | int | None]) -> str:
    """An array literal of ints and Decimals (None: NULL). ``str()`` of either is
    numeric input PostgreSQL reads unquoted (``1E+3``, ``NaN``, ``-Infinity``); the
    values a batch may carry are those ``fits_in_batch`` lets through."""
    return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"


def text_array(values: list[str | None]) -> str:
    """An array literal of texts (None: NULL), each quoted, with backslash and double
    quote escaped: nothing else is special inside the quotes. (NUL cannot occur: the
    text rules refuse it before.)"""
    return (
        "{"
        + ",".join(
            [
                "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                for v in values
            ]
        )
        + "}"
    )


def time_array(values: list[datetime | None]) -> str:
    """An array literal of timezone-aware datetimes (None: NULL), in ISO 8601 with their
    offset, which timestamptz reads exactly whatever the session's TimeZone."""
    return text_array([None if v is None else v.isoformat() for v in values])


def json_array(values: list[Jsonb | None]) -> str:
    """An array literal of JSON values (None: NULL), each as its JSON text."""
    return text_array([None if v is None else json.dumps(v.obj) for v in values])
