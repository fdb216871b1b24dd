"""Named queries from ``queries.sql``, parsed once."""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString

_BLOCK = re.compile(r"^-- name: (\w+)\n-- (.+)\n((?:(?!-- name:).*\n?)+)", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    queries: dict[str, str] = {}
    for name, _description, body in _BLOCK.findall(text):
        if name in queries:
            raise ValueError(f"query {name} is defined twice")
        queries[name] = body.strip()
    return queries


QUERIES: dict[str, str] = parse_queries(
    resources.files("pgportfolio").joinpath("queries.sql").read_text(encoding="utf-8")
)


def query(name: str) -> LiteralString:
    # The text is ours, read from the package: a literal in all but syntax.
    return QUERIES[name]
