"""Durations as people type them, one syntax for every flag: `500ms`, `90s`, `10m`, `12h`,
`7d`, `2w`, or combined, `1h30m`.

A bare number is read as seconds only where a flag says it is in seconds (`--delay 30`,
`--poll-interval 0.5`). An age that decides what gets deleted (`--keep-succeeded`) must carry
its unit: `prune --keep-succeeded 7` once deleted a week of jobs kept for 7 seconds.
"""

from __future__ import annotations

import math
import re

from pgqueue.errors import ConfigurationError

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))+\s*$")
FOREVER = ("forever", "never", "none")
EXAMPLES = "e.g. 500ms, 90s, 10m, 12h, 7d, 2w, 1h30m"


def parse_duration(text: str, *, bare_seconds: bool = True) -> float:
    """Seconds in `text`; a bare number is seconds when `bare_seconds`, refused otherwise
    (but 0, which needs no unit)."""
    cleaned = text.strip().lower()
    if _WHOLE.match(cleaned):
        return sum(float(number) * UNITS[unit] for number, unit in _PART.findall(cleaned))
    try:
        seconds = float(cleaned)
    except ValueError:
        raise ConfigurationError(f"not a duration: {text!r} ({EXAMPLES})") from None
    if not bare_seconds and seconds != 0:
        raise ConfigurationError(
            f"{text!r} has no unit: write {cleaned}d for days, {cleaned}h for hours or "
            f"{cleaned}s for seconds ({EXAMPLES})")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"not a duration: {text!r} (a number of seconds >= 0, or "
                                 f"{EXAMPLES})")
    return seconds


def parse_age(text: str) -> float | None:
    """How long finished jobs are kept: a duration with its unit, or `forever` (None)."""
    if text.strip().lower() in FOREVER:
        return None
    return parse_duration(text, bare_seconds=False)


def format_duration(seconds: float) -> str:
    """An exact spelling in the same syntax (`7d`, `1h30m`, `0.5s`): what `--help`
    shows as a default, and what parse_duration reads back."""
    if seconds == 0:
        return "0s"
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, whole = divmod(whole, int(UNITS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
