"""Loads the named SQL blocks of sql/queries.sql once, at import.

No other module holds SQL text: code refers to queries by name, and a typo fails at import
time of the caller's first use with the list of known names.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse_named_queries(text: str) -> dict[str, str]:
    """The blocks of a named-query file (also the Django integration's own file)."""
    parts = _NAME_LINE.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = "\n".join(line for line in body.strip().splitlines() if not line.startswith("--"))
        queries[name] = sql.strip().rstrip(";")
    return queries


QUERIES: dict[str, str] = parse_named_queries(
    resources.files("pgqueue").joinpath("sql/queries.sql").read_text(encoding="utf-8")
)


def query(name: str) -> str:
    try:
        return QUERIES[name]
    except KeyError:
        raise KeyError(f"no query named {name!r}; known: {', '.join(sorted(QUERIES))}") from None
