"""The bulk enqueue encoders: the scalar fast path writes what the general walk writes and
rejects what it rejects; COPY rows are escaped and numbered right."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from pgqueue import store
from pgqueue.copy_rows import job_rows
from pgqueue.errors import InvalidArguments, PayloadTooLarge
from pgqueue.validation import encode_arguments, to_json


class Number(int):
    pass


class Text(str):
    pass


@pytest.mark.parametrize("args", [
    (0,), (-3, 10**30), (1.5, -0.0, 1e300, 5e-324), (True, False, None), ("",),
    ('quote " back\\slash', "tab\tnew\nline\r\x01\x1f", "ünïcødé ✓ 队列", "\u2028\U0001f600"),
    (1, True, 1.0, "1", None),
])
def test_scalar_arguments_encode_as_the_general_walk_does(args: tuple[object, ...]) -> None:
    kwargs = {f"k{i}": value for i, value in enumerate(args)} | {'key "quoted"\\': 1}
    assert encode_arguments(args, kwargs, max_bytes=10**6) == (
        to_json(list(args), "positional arguments"), to_json(kwargs, "keyword arguments"))


@pytest.mark.parametrize("value", [
    math.nan, math.inf, -math.inf, Number(1), Text("x"), "nul\x00char", (1, 2), {1, 2}, b"x",
])
def test_values_the_fast_path_cannot_take_are_still_rejected_typed(value: object) -> None:
    with pytest.raises(InvalidArguments):
        encode_arguments((1, value), {}, max_bytes=10**6)
    with pytest.raises(InvalidArguments):
        encode_arguments((), {"k": value}, max_bytes=10**6)


@pytest.mark.parametrize("key", [1, True, None, Text("k"), "nul\x00key"])
def test_keyword_names_must_be_plain_strings(key: object) -> None:
    with pytest.raises(InvalidArguments):
        encode_arguments((), {key: 1}, max_bytes=10**6)  # type: ignore[dict-item]


def test_payload_cap_counts_utf8_bytes_on_the_fast_path() -> None:
    assert encode_arguments(("x" * 98,), {}, max_bytes=104)  # ["x…x"] and {}: 104 bytes
    with pytest.raises(PayloadTooLarge, match="105 bytes"):
        encode_arguments(("x" * 99,), {}, max_bytes=104)
    with pytest.raises(PayloadTooLarge, match="106 bytes"):
        encode_arguments(("é" * 50,), {}, max_bytes=105)  # 56 characters, 106 bytes


def test_a_lone_surrogate_is_refused_typed() -> None:
    with pytest.raises(InvalidArguments, match="surrogate"):
        encode_arguments(("\ud800",), {}, max_bytes=10**6)


def test_copy_rows_number_and_escape_every_job() -> None:
    chunks = [[('["a\\\\b"]', "{}"), ("[1]", '{"k":"\\"q\\""}')], [("[]", "{}")]]
    rows = list(job_rows([7, 8, 9], chunks, head="task\tq", tail="0\t3\t\\N"))
    assert rows == [
        '7\ttask\tq\t["a\\\\\\\\b"]\t{}\t0\t3\t\\N\n8\ttask\tq\t[1]\t{"k":"\\\\"q\\\\""}\t0\t3\t\\N\n',
        "9\ttask\tq\t[]\t{}\t0\t3\t\\N\n",
    ]


@pytest.mark.parametrize("ids", [[1, 2], [1, 2, 3, 4]])
def test_copy_rows_refuse_a_count_that_does_not_match_the_ids(ids: list[int]) -> None:
    with pytest.raises(ValueError, match="ids reserved"):
        list(job_rows(ids, [[("[]", "{}")] * 3], head="t\tq", tail="0"))


def test_reserved_ids_come_back_as_a_range_or_as_they_are() -> None:
    now = datetime.now(UTC)
    call = store.reserve_job_ids(count=3, run_at=None, delay=0.0)
    assert call.decode([{"first_id": 41, "ids": None, "run_at": now}]) == ([41, 42, 43], now)
    assert call.decode([{"first_id": 41, "ids": [41, 45, 46], "run_at": now}]) == (
        [41, 45, 46], now)


def test_copy_jobs_leaves_run_at_to_its_default_only_for_jobs_due_now() -> None:
    common = {"ids": [1], "task_name": "t\\n", "queue": "q", "priority": 5, "max_attempts": 2,
              "timeout_seconds": 1.5, "arguments": [[("[1]", "{}")]]}
    due_now = store.copy_jobs(run_at=None, **common)  # type: ignore[arg-type]
    assert due_now.query_name == "copy_jobs_due_now" and "run_at" not in due_now.sql
    assert list(due_now.data) == ["1\tt\\\\n\tq\t[1]\t{}\t5\t2\t1.5\n"]
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    later = store.copy_jobs(run_at=when, **common)  # type: ignore[arg-type]
    assert later.query_name == "copy_jobs" and "run_at" in later.sql
    assert list(later.data) == [f"1\tt\\\\n\tq\t[1]\t{{}}\t5\t{when.isoformat()}\t2\t1.5\n"]
