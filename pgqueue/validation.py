"""Checks run at enqueue time so bad input fails in the caller, typed, and writes nothing."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from json.encoder import encode_basestring
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
    """Serialise a value made only of exact JSON types. Anything else (a tuple, a set, a
    Decimal, int dict keys, a str or int subclass, NaN) would be silently altered by the
    round-trip or rejected later by Postgres, so it is refused here, typed."""
    if not _is_plain_json(value):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArguments(f"{what} is not JSON-serialisable: {exc}") from exc
        raise InvalidArguments(
            f"{what} does not survive a JSON round-trip unchanged (tuples, non-str dict keys, "
            "NaN and subclasses of JSON types are altered); pass lists, dicts with str keys, "
            "str, int, float, bool and None"
        )
    text = _ENCODER.encode(value)
    if "\\u0000" in text:
        raise InvalidArguments(f"{what} contains a NUL character, which Postgres jsonb rejects")
    return text


_SCALARS = (str, int, bool, type(None))
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once: hot path


def _is_plain_json(value: Any) -> bool:
    """One walk, exact types only (bool is not int here; 1.0 stays a float)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_is_plain_json(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _is_plain_json(item) for key, item in value.items())
    return False


def encode_arguments(
    args: Sequence[Any], kwargs: Mapping[str, Any], *, max_bytes: int
) -> tuple[str, str]:
    args_json = (
        (_scalar_array(args) or to_json(list(args), "positional arguments")) if args else "[]"
    )
    kwargs_json = (
        (_scalar_object(kwargs) or to_json(dict(kwargs), "keyword arguments"))
        if kwargs else "{}"
    )
    size = len(args_json) + len(kwargs_json)
    if not (args_json.isascii() and kwargs_json.isascii()):  # else a character is a byte
        size = _utf8_size(args_json) + _utf8_size(kwargs_json)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"arguments are {size} bytes as JSON, over the cap of {max_bytes} bytes "
            "(App(max_payload_bytes=...)); store large data elsewhere and pass a reference"
        )
    return args_json, kwargs_json


def _not_scalar(value: Any) -> None:
    return None


_SCALAR_JSON: dict[type, Callable[[Any], str | None]] = {
    int: int.__repr__, str: encode_basestring, type(None): lambda value: "null",
    bool: lambda value: "true" if value else "false",
    float: lambda value: float.__repr__(value) if math.isfinite(value) else None,
}
"""What `to_json` writes for each exact scalar type, minus the encoder's per-call setup: most
jobs' arguments are a few scalars, and a bulk enqueue encodes tens of thousands of them."""


def _scalar_array(values: Iterable[Any]) -> str | None:
    """The JSON array `to_json` would write, if every value is a plain scalar; else None, and
    the general walk encodes the values or raises the typed error."""
    parts = [_SCALAR_JSON.get(type(value), _not_scalar)(value) for value in values]
    if None in parts:
        return None
    return _without_nul("[" + ",".join(parts) + "]")


def _scalar_object(kwargs: Mapping[str, Any]) -> str | None:
    """As `_scalar_array`, for a flat dict with str keys."""
    if not all(type(key) is str for key in kwargs):
        return None
    values = [_SCALAR_JSON.get(type(value), _not_scalar)(value) for value in kwargs.values()]
    if None in values:
        return None
    return _without_nul(
        "{" + ",".join(map("{}:{}".format, map(encode_basestring, kwargs), values)) + "}")


def _without_nul(text: str) -> str | None:
    """None if the JSON holds an escaped NUL: `to_json` then raises its typed error."""
    return None if "\\u0000" in text else text


def _utf8_size(text: str) -> int:
    """Bytes as Postgres stores them. A lone surrogate has no UTF-8 form: refused here, typed,
    rather than by the driver halfway through a bulk COPY."""
    try:
        return len(text.encode())
    except UnicodeEncodeError as exc:
        raise InvalidArguments(
            f"arguments hold a lone surrogate ({exc.reason}), which is not valid UTF-8") from exc


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
