"""Money and quantities are ``Decimal``: a float is refused before anything is sent.

Range, sign and decimal places are checked by the database (22023), so there is one
rule and one error; the client refuses only what it alone can see: the Python type.
"""

from __future__ import annotations

from decimal import Decimal

from pgportfolio.errors import InvalidInput


def as_decimal(name: str, value: object) -> Decimal:
    """``value`` as a Decimal. ``int`` is exact and accepted; ``float`` and ``bool`` are not."""
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a Decimal, not bool")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        raise InvalidInput(
            f"{name} must be a Decimal, not float ({value!r}): floats are inexact; "
            f"use Decimal('{value}') or a string"
        )
    raise InvalidInput(f"{name} must be a Decimal, not {type(value).__name__}")


def optional_decimal(name: str, value: object) -> Decimal | None:
    return None if value is None else as_decimal(name, value)


def as_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a str, not {type(value).__name__}")
    return value


def as_id(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an int, not {type(value).__name__}")
    return value
