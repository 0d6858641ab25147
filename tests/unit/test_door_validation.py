"""The door's limits in Python (pgqueue/validation.py): each is refused with a typed error, at
any size of input, and the value just inside each limit is accepted."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from pgqueue.errors import ConfigurationError, InvalidArguments, InvalidSchedule
from pgqueue.validation import (
    MAX_ATTEMPTS,
    MAX_INT_DIGITS,
    MAX_NESTING,
    MAX_RUN_AT,
    MAX_TIMEOUT_SECONDS,
    MIN_RUN_AT,
    check_max_attempts,
    check_schedule,
    check_timeout,
    encode_arguments,
    to_json,
)


def nested_lists(depth: int) -> list[Any]:
    """`depth` lists inside one another, built without recursion."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nested_dicts(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def encode(args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> tuple[str, str]:
    return encode_arguments(args, kwargs or {}, max_bytes=10**9)


def test_nesting_up_to_the_limit_is_accepted_counting_the_arguments_themselves() -> None:
    assert json.loads(to_json(nested_lists(MAX_NESTING), "value")) == nested_lists(MAX_NESTING)
    assert to_json(nested_dicts(MAX_NESTING), "value")
    args_json, kwargs_json = encode((nested_lists(MAX_NESTING - 1),),
                                    {"k": nested_dicts(MAX_NESTING - 1)})
    assert args_json.count("[") == MAX_NESTING and kwargs_json.count("{") == MAX_NESTING


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 500, 1_000, 100_000])
def test_deeper_nesting_is_refused_typed_at_any_depth(depth: int) -> None:
    """Depth ~500 used to raise an untyped RecursionError (the walk recursed)."""
    for value in (nested_lists(depth), nested_dicts(depth),
                  [1, {"a": "b"}, [nested_lists(depth)]][2][0]):
        with pytest.raises(InvalidArguments, match=f"more than {MAX_NESTING} levels"):
            to_json(value, "value")
    with pytest.raises(InvalidArguments, match="positional arguments is nested"):
        encode((nested_lists(depth - 1),))
    with pytest.raises(InvalidArguments, match="keyword arguments is nested"):
        encode(kwargs={"k": nested_dicts(depth - 1)})


def test_a_bad_type_is_named_even_beside_a_branch_too_deep_for_json() -> None:
    with pytest.raises(InvalidArguments, match="set is not a JSON type"):
        to_json([{1, 2}, nested_lists(5_000)], "value")
    with pytest.raises(InvalidArguments, match="round-trip"):
        to_json([(1, 2), nested_lists(5_000)], "value")


@pytest.fixture
def int_digit_limit() -> Iterator[None]:
    saved = sys.get_int_max_str_digits()
    yield
    sys.set_int_max_str_digits(saved)


@pytest.mark.parametrize("unlimited", [False, True])
def test_integers_beyond_what_python_decodes_are_refused(int_digit_limit: None,
                                                          unlimited: bool) -> None:
    """The limit is the default `sys.get_int_max_str_digits()`, which bounds the worker's
    decoding, whatever this process set for itself."""
    if unlimited:
        sys.set_int_max_str_digits(0)
    largest = 10**MAX_INT_DIGITS - 1
    assert json.loads(encode((largest, -largest))[0]) == [largest, -largest]
    for too_large in (10**MAX_INT_DIGITS, -(10**MAX_INT_DIGITS), 10**20_000):
        for args, kwargs in (((too_large,), {}), ((), {"n": too_large}),
                             (([1, too_large],), {}), ((), {"n": {"m": too_large}})):
            with pytest.raises(InvalidArguments, match=f"more than {MAX_INT_DIGITS} digits"):
                encode(args, kwargs)


def test_an_integer_this_process_cannot_print_is_refused_typed(int_digit_limit: None) -> None:
    sys.set_int_max_str_digits(640)
    with pytest.raises(InvalidArguments, match="cannot print"):
        encode(([10**700],))


@pytest.mark.parametrize("value", ["\x00", "a\x00b", "\\\x00", {"k\x00": 1}, [["\x00"]]])
def test_a_real_nul_is_refused(value: Any) -> None:
    with pytest.raises(InvalidArguments, match="NUL"):
        to_json(value, "value")
    args = (value,) if not isinstance(value, dict) else ()
    with pytest.raises(InvalidArguments, match="NUL"):
        encode(args, value if isinstance(value, dict) else None)


@pytest.mark.parametrize("text", ["\\u0000", "C:\\u0000\\x", "\\\\u0000", "\\\\\\u0000x"])
def test_the_text_backslash_u0000_is_not_a_nul(text: str) -> None:
    """It used to be refused: the check matched the six characters in the JSON text."""
    for args, kwargs in (((text,), {}), ((), {"t": text}), (([text],), {}),
                         ((), {text: [text]})):
        args_json, kwargs_json = encode(args, kwargs)
        assert (tuple(json.loads(args_json)), json.loads(kwargs_json)) == (args, kwargs)


def test_run_at_must_be_decodable_in_every_time_zone() -> None:
    for edge in (MIN_RUN_AT, MAX_RUN_AT, MIN_RUN_AT.astimezone(timezone(timedelta(hours=14))),
                 datetime(2030, 1, 1, tzinfo=UTC)):
        assert check_schedule(edge, None) == (edge, 0.0)
    for outside in (MIN_RUN_AT - timedelta(microseconds=1),
                    MAX_RUN_AT + timedelta(microseconds=1),
                    datetime.min.replace(tzinfo=timezone(timedelta(hours=14))),
                    datetime.max.replace(tzinfo=UTC)):
        with pytest.raises(InvalidSchedule, match="run_at must be between 0001-01-02"):
            check_schedule(outside, None)


def test_a_delay_past_the_latest_run_at_is_refused() -> None:
    century = 100 * 365 * 86_400.0
    assert check_schedule(None, century) == (None, century)
    for delay in (1e12, timedelta(days=3_000_000), sys.float_info.max):
        with pytest.raises(InvalidSchedule, match="runs past 9999-12-30"):
            check_schedule(None, delay)


def test_max_attempts_bounds() -> None:
    assert check_max_attempts(1) == 1 and check_max_attempts(MAX_ATTEMPTS) == MAX_ATTEMPTS
    for bad in (0, -1, MAX_ATTEMPTS + 1, 2**31, True, 2.0, "3", None):
        with pytest.raises(ConfigurationError, match="max_attempts must be an int between 1"):
            check_max_attempts(bad)


def test_timeout_bounds() -> None:
    assert check_timeout(None) is None
    assert check_timeout(30) == 30.0 and check_timeout(1e-6) == 1e-6
    assert check_timeout(MAX_TIMEOUT_SECONDS) == MAX_TIMEOUT_SECONDS
    for bad in (0, -1.0, math.nan, math.inf, -math.inf, MAX_TIMEOUT_SECONDS + 1, True, "30"):
        with pytest.raises(ConfigurationError, match="timeout must be None or seconds"):
            check_timeout(bad)
