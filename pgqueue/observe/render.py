"""How the CLI prints what it read: aligned tables for people, JSON for programs.

Every value producers or tasks wrote goes through `printable` in tables (a name holding an
escape sequence cannot drive the terminal); JSON escapes by itself.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from pgqueue.printable import printable

Out = Callable[[str], None]


def table(out: Out, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(map(str, header)), *[list(map(printable, row)) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def to_json(value: Any) -> str:
    """One JSON document: dataclasses as objects, times in ISO 8601, intervals in seconds."""
    return json.dumps(value, default=_plain, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def timestamp(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` characters, marked with an ellipsis when cut."""
    return text if len(text) <= width else text[:width - 1] + "\N{HORIZONTAL ELLIPSIS}"
