"""Checks run at enqueue time so bad input fails in the caller, typed, and writes nothing."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pgqueue.errors import (
    InvalidArguments,
    InvalidName,
    InvalidPriority,
    InvalidSchedule,
    PayloadTooLarge,
)

MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
MAX_QUEUE_NAME, MAX_TASK_NAME = 200, 300
DEFAULT_MAX_PAYLOAD_BYTES = 1_000_000


def to_json(value: Any, what: str) -> str:
    """Serialise, then prove the value comes back unchanged (a tuple, a set, a Decimal, int dict
    keys or NaN would be silently altered or rejected later by Postgres)."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidArguments(f"{what} is not JSON-serialisable: {exc}") from exc
    if "\\u0000" in text:
        raise InvalidArguments(f"{what} contains a NUL character, which Postgres jsonb rejects")
    if not _same(json.loads(text), value):
        raise InvalidArguments(
            f"{what} does not survive a JSON round-trip unchanged (tuples, non-str dict keys "
            "and subclasses of JSON types are altered); pass lists, dicts with str keys, "
            "str, int, float, bool and None"
        )
    return text


def _same(decoded: Any, original: Any) -> bool:
    """Strict equality: types must match too (1 == 1.0 == True in Python, but not in JSON)."""
    if type(decoded) is not type(original):
        return False
    if isinstance(original, list):
        return len(decoded) == len(original) and all(map(_same, decoded, original))
    if isinstance(original, dict):
        return decoded.keys() == original.keys() and all(
            _same(decoded[key], original[key]) for key in original
        )
    return bool(decoded == original)


def encode_arguments(
    args: Sequence[Any], kwargs: Mapping[str, Any], *, max_bytes: int
) -> tuple[str, str]:
    args_json = to_json(list(args), "positional arguments")
    kwargs_json = to_json(dict(kwargs), "keyword arguments")
    size = len(args_json.encode()) + len(kwargs_json.encode())
    if size > max_bytes:
        raise PayloadTooLarge(
            f"arguments are {size} bytes as JSON, over the cap of {max_bytes} bytes "
            "(App(max_payload_bytes=...)); store large data elsewhere and pass a reference"
        )
    return args_json, kwargs_json


def check_name(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_length or not value.isprintable():
        raise InvalidName(
            f"{what} must be a str of 1 to {max_length} printable characters, got {value!r:.80}"
        )
    return value


def check_priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPriority(f"priority must be an int, not {type(value).__name__}")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidPriority(
            f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {value}"
        )
    return value


def check_schedule(run_at: datetime | None, delay: float | None) -> tuple[datetime | None, float]:
    if run_at is not None and delay is not None:
        raise InvalidSchedule("give run_at or delay, not both")
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise InvalidSchedule(f"run_at must be a datetime, not {type(run_at).__name__}")
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise InvalidSchedule("run_at must be timezone-aware (a naive datetime is ambiguous)")
    seconds = 0.0 if delay is None else delay
    if hasattr(seconds, "total_seconds"):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(
        seconds
    ) or seconds < 0:
        raise InvalidSchedule(f"delay must be a finite number of seconds >= 0, got {delay!r}")
    return run_at, float(seconds)
