"""How the demo prints: lines stamped with the time since start, durations, and tables the way
psql draws them (so the queue_stats output reads as a DBA would see it)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any


class Clock:
    """Seconds since the demo started, printed in front of each progress line."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():5.1f}s] {message}", flush=True)


def duration(seconds: float | timedelta | None) -> str:
    """12 ms, 1.25 s: milliseconds below a second, seconds above."""
    if seconds is None:
        return "-"
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if abs(seconds) < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def psql_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows drawn as psql's aligned format does: centred headers, numbers to the right,
    NULL as blank, booleans as t/f, and a row count."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[index]) for row in cells)])
              for index, name in enumerate(columns)]

    def centred(name: str, width: int) -> str:
        left = (width - len(name)) // 2
        return " " * left + name + " " * (width - len(name) - left)

    lines = [" " + " | ".join(centred(name, width) for name, width in zip(columns, widths,
                                                                           strict=True)),
             "+".join("-" * (width + 2) for width in widths)]
    for raw, row in zip(rows, cells, strict=True):
        lines.append(" " + " | ".join(
            text.rjust(width) if _is_number(value) else text.ljust(width)
            for value, text, width in zip(raw, row, widths, strict=True)))
    lines.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(line.rstrip() for line in lines)
