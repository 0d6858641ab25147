from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pgqueue.errors import (
    InvalidArguments,
    InvalidName,
    InvalidPriority,
    InvalidSchedule,
    PayloadTooLarge,
)
from pgqueue.validation import (
    check_name,
    check_priority,
    check_schedule,
    encode_arguments,
    to_json,
)


@pytest.mark.parametrize("value", [
    {1, 2}, Decimal("1.5"), object(), lambda: None, (1, 2), [1, (2, 3)], {1: "int key"},
    math.nan, math.inf, datetime.now(UTC), b"bytes", "nul\x00char", [True, {"k": {1}}],
])
def test_values_that_do_not_round_trip_are_rejected(value: object) -> None:
    with pytest.raises(InvalidArguments):
        to_json(value, "argument")


@pytest.mark.parametrize("value", [
    None, True, 0, -3, 1.5, "text", "ünïcødé ✓", [], {}, [1, "a", None, [2.0], {"k": [True]}],
    {"nested": {"deep": [1, 2, {"x": None}]}},
])
def test_json_values_round_trip(value: object) -> None:
    assert to_json(value, "argument")


def test_payload_cap_counts_bytes_of_both_args_and_kwargs() -> None:
    encode_arguments(["x" * 40], {"k": "y" * 40}, max_bytes=100)
    with pytest.raises(PayloadTooLarge, match="over the cap of 100 bytes"):
        encode_arguments(["x" * 60], {"k": "y" * 60}, max_bytes=100)
    with pytest.raises(PayloadTooLarge):
        encode_arguments(["é" * 40], {}, max_bytes=50)  # 80 bytes in UTF-8, 40 characters


@pytest.mark.parametrize("name", ["default", "emails.high", "with space", "quote'd\"",
                                  "x;DROP TABLE pgqueue.jobs;--", "$$dollar$$", "队列", "a" * 200])
def test_hostile_but_printable_names_are_accepted_verbatim(name: str) -> None:
    assert check_name(name, "queue", 200) == name


@pytest.mark.parametrize("name", ["", "a" * 201, "tab\there", "new\nline", "nul\x00", 42, None])
def test_bad_names_are_rejected(name: object) -> None:
    with pytest.raises(InvalidName):
        check_name(name, "queue", 200)


@pytest.mark.parametrize("priority", [1001, -1001, 1.5, "1", True, None])
def test_bad_priorities_are_rejected(priority: object) -> None:
    with pytest.raises(InvalidPriority):
        check_priority(priority)


def test_schedule_rules() -> None:
    aware = datetime.now(UTC)
    assert check_schedule(aware, None) == (aware, 0.0)
    assert check_schedule(None, timedelta(seconds=5)) == (None, 5.0)
    assert check_schedule(None, 2) == (None, 2.0)
    with pytest.raises(InvalidSchedule, match="timezone-aware"):
        check_schedule(datetime.now(), None)
    for delay in (-1, math.inf, math.nan, "5", True):
        with pytest.raises(InvalidSchedule):
            check_schedule(None, delay)  # type: ignore[arg-type]
    with pytest.raises(InvalidSchedule, match="not both"):
        check_schedule(aware, 1)
