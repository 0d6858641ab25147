"""Checks run at enqueue time so bad input fails in the caller, typed, and writes nothing.

The limits here are the door's whole contract, and migrations_sql/0006_door_checks.sql holds
the database to the same ones (docs/sql.md, "What a job may hold"): a value that passes here is
one every worker can decode and run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from pgqueue.errors import (
    ConfigurationError,
    InvalidArguments,
    InvalidName,
    InvalidPriority,
    InvalidSchedule,
    PayloadTooLarge,
    ResultTooLarge,
)

MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
MAX_QUEUE_NAME, MAX_TASK_NAME = 200, 300
MAX_UNIQUE_KEY = 500
DEFAULT_MAX_PAYLOAD_BYTES = 1_000_000
DEFAULT_RESULT_MAX_BYTES = 1024 * 1024
"""A job's return value, as JSON: a result is read back whole by every `get_job` and `wait`,
and kept in the row until retention prunes it."""
MAX_NESTING = 100
"""Arrays and objects inside one another, the outermost counted: `[[1]]` is 2 deep. Far above
any real payload, and far below the ~1,000 at which Python's json (bound by the recursion
limit, like psycopg's jsonb loader that uses it) fails inside a worker's own call stack."""
MAX_INT_DIGITS = 4300
"""Python's default `sys.get_int_max_str_digits()`: a longer integer cannot be decoded."""
MAX_ATTEMPTS = 1_000_000
MAX_TIMEOUT_SECONDS = 365 * 86_400
MIN_RUN_AT = datetime(1, 1, 2, tzinfo=UTC)
MAX_RUN_AT = datetime(9999, 12, 30, tzinfo=UTC)
"""Python's datetime spans years 1 to 9999; a day's margin keeps a value decodable in every
session time zone (Postgres' own range, and +-infinity, would fail the worker's decoding)."""

_MAX_INT = 10**MAX_INT_DIGITS
_MIN_INT = -_MAX_INT  # negated once: negating it per comparison allocates a 4,300-digit int


def to_json(value: Any, what: str) -> str:
    """Serialise a value made only of exact JSON types. Anything else (a tuple, a set, a
    Decimal, int dict keys, a str or int subclass, NaN) would be silently altered by the
    round-trip or rejected later by Postgres, and a value nested past MAX_NESTING or an integer
    past MAX_INT_DIGITS could not be decoded by a worker: all are refused here, typed."""
    problem = _json_problem(value)
    if problem:
        raise InvalidArguments(f"{what} {problem}")
    try:
        text = _ENCODER.encode(value)
    except ValueError as exc:  # a process that lowered sys.set_int_max_str_digits()
        raise InvalidArguments(f"{what} holds an integer this process cannot print: {exc}"
                               ) from exc
    if _has_nul(text):
        raise InvalidArguments(f"{what} contains a NUL character, which Postgres jsonb rejects")
    return text


_SCALARS = (str, int, bool, type(None))
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once: hot path
_ROUND_TRIP = (
    "does not survive a JSON round-trip unchanged (tuples, non-str dict keys, NaN and "
    "subclasses of JSON types are altered); pass lists, dicts with str keys, str, int, float, "
    "bool and None"
)
_JSON_KINDS = (list, tuple, dict, str, int, float, type(None))


def _json_problem(value: Any) -> str | None:
    """Why `value` cannot be stored as it is (None: it can). One iterative walk, exact types
    only (bool is not int here; 1.0 stays a float), so no depth of nesting can exhaust the
    stack before the limit is reported."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        kind = type(item)
        if kind is list:
            members: Iterable[Any] = item
        elif kind is dict:
            if not all(type(key) is str for key in item):
                return _ROUND_TRIP
            members = item.values()
        else:
            return _scalar_problem(item)
        depth += 1
        if depth > MAX_NESTING:
            return f"is nested more than {MAX_NESTING} levels deep (arrays and objects)"
        for member in members:  # inlined, commonest first: this loop is the bulk of a walk
            member_kind = type(member)
            if member_kind is int:
                if _MIN_INT < member < _MAX_INT:
                    continue
            elif member_kind is str or member_kind is bool or member is None:
                continue
            elif member_kind is list or member_kind is dict:
                pending.append((member, depth))
                continue
            elif member_kind is float and math.isfinite(member):
                continue
            return _scalar_problem(member)
    return None


def _scalar_problem(value: Any) -> str | None:
    kind = type(value)
    if kind is int:
        if _MIN_INT < value < _MAX_INT:
            return None
        return f"holds an integer of more than {MAX_INT_DIGITS} digits, which no worker decodes"
    if kind in _SCALARS or (kind is float and math.isfinite(value)):
        return None
    if kind is float:
        return "holds NaN or an infinity, which JSON has no value for"
    if isinstance(value, _JSON_KINDS):
        return _ROUND_TRIP
    return f"is not JSON-serialisable: {kind.__name__} is not a JSON type"


_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""`\\u0000` starting a JSON escape (an even run of backslashes before it, so not the text
`\\u0000` a user wrote, which JSON writes with its backslash doubled)."""


def _has_nul(text: str) -> bool:
    """A real NUL in JSON text; the substring test alone is the fast path for the common case."""
    return "\\u0000" in text and _ESCAPED_NUL.search(text) is not None


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
    try:
        parts = [_SCALAR_JSON.get(type(value), _not_scalar)(value) for value in values]
    except ValueError:  # an integer past the process's digit limit: the walk says which
        return None
    if None in parts:
        return None
    return _plainly_valid("[" + ",".join(parts) + "]")


def _scalar_object(kwargs: Mapping[str, Any]) -> str | None:
    """As `_scalar_array`, for a flat dict with str keys."""
    if not all(type(key) is str for key in kwargs):
        return None
    try:
        values = [_SCALAR_JSON.get(type(value), _not_scalar)(value) for value in kwargs.values()]
    except ValueError:
        return None
    if None in values:
        return None
    return _plainly_valid(
        "{" + ",".join(map("{}:{}".format, map(encode_basestring, kwargs), values)) + "}")


def _plainly_valid(text: str) -> str | None:
    """None if the general walk must look: a NUL, or a text long enough to hold an integer past
    MAX_INT_DIGITS (printable when a process raised its own limit). `to_json` then raises the
    typed error, or encodes the values after all."""
    return None if len(text) > MAX_INT_DIGITS or _has_nul(text) else text


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
        if not MIN_RUN_AT <= run_at <= MAX_RUN_AT:
            raise InvalidSchedule(f"run_at must be between {MIN_RUN_AT.date()} and "
                                  f"{MAX_RUN_AT.date()} UTC, got {run_at.isoformat()}")
    seconds = 0.0 if delay is None else delay
    if hasattr(seconds, "total_seconds"):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(
        seconds
    ) or seconds < 0:
        raise InvalidSchedule(f"delay must be a finite number of seconds >= 0, got {delay!r}")
    if seconds and seconds > (MAX_RUN_AT - datetime.now(UTC)).total_seconds():
        raise InvalidSchedule(f"delay of {seconds:g} seconds runs past {MAX_RUN_AT.date()}, "
                              "the latest run_at")
    return run_at, float(seconds)


def check_max_attempts(value: Any) -> int:
    """Bounded so the attempt count stays far inside the database's integer, in Python and
    in SQL alike (migration 0006)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS:
        raise ConfigurationError(
            f"max_attempts must be an int between 1 and {MAX_ATTEMPTS}, not {value!r}")
    return value


def check_timeout(value: Any) -> float | None:
    """None (no timeout) or finite seconds up to MAX_TIMEOUT_SECONDS: NaN and infinities are
    floats too, and a thread cannot wait past `threading.TIMEOUT_MAX`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 < value <= MAX_TIMEOUT_SECONDS):
        raise ConfigurationError(
            f"timeout must be None or seconds > 0 and <= {MAX_TIMEOUT_SECONDS}, not {value!r}")
    return float(value)


def check_result_max_bytes(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ConfigurationError(f"result_max_bytes must be an int >= 1 or None, not {value!r}")
    return value


def checked_result(result_json: str, max_bytes: int | None) -> str:
    """The encoded return value, if it fits the app's `result_max_bytes` (None: no cap);
    else `ResultTooLarge`, naming both sizes."""
    if max_bytes is not None and len(result_json) * 4 > max_bytes:  # cheap for most results
        size = len(result_json.encode())
        if size > max_bytes:
            raise ResultTooLarge(f"the return value is {size:,} bytes of JSON; the app's "
                                 f"result_max_bytes is {max_bytes:,}: store it elsewhere (a "
                                 "table, object storage) and return a reference")
    return result_json
