"""Text producers wrote reaches the terminal escaped: the helper, and `pgqueue top`'s frame built
from hostile names and errors (the CLI's tables are tested end to end in tests/acceptance)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console

from pgqueue.observe.snapshot import Snapshot
from pgqueue.observe.top import render
from pgqueue.printable import printable

CLEAR_AND_RETITLE = "\x1b[2J\x1b]0;owned\x07"
CONTROLS = CLEAR_AND_RETITLE + "\x9b31m\r\n\t\x7f\u202e\x00"


@pytest.mark.parametrize(("text", "shown"), [
    ("emails", "emails"),
    ("é✓ 队列 with spaces", "é✓ 队列 with spaces"),
    ("C:\\temp\\x1b", "C:\\temp\\x1b"),  # backslashes a user wrote stay as they are
    (CLEAR_AND_RETITLE, "\\x1b[2J\\x1b]0;owned\\x07"),
    ("a\r\nb\tc\x7f\x9b\u202e\x00", "a\\r\\nb\\tc\\x7f\\x9b\\u202e\\x00"),
    (None, "None"),
    (42, "42"),
])
def test_non_printable_characters_are_escaped(text: object, shown: str) -> None:
    assert printable(text) == shown
    assert printable(text).isprintable()


def test_top_escapes_every_value_it_did_not_write_itself() -> None:
    hostile = "q" + CONTROLS + "[/][bold]"
    queue = {"queue": hostile, "paused": False, "queued": 1, "due": 1, "scheduled": 0,
             "running": 0, "succeeded": 0, "failed": 1, "cancelled": 0,
             "oldest_waiting_seconds": 1.0, "started_5m": 0, "wait_p50_seconds": None,
             "wait_p95_seconds": None, "waiting_on_lock": 0, "concurrency": None,
             "held_back_by": None}
    task = {"task_name": hostile, "queued": 1, "running": 0, "retrying": 1, "succeeded_1m": 0,
            "failed_1m": 1, "succeeded_5m": 0, "failed_5m": 1, "succeeded_1h": 0,
            "failed_1h": 1, "cancelled_1h": 0, "per_minute_5m": 0.2, "error_rate_5m": 1.0,
            "error_rate_1h": 1.0, "duration_p50_seconds": 0.1, "duration_p95_seconds": 0.1,
            "last_failed_at": datetime.now(UTC), "last_error": "Boom: " + CONTROLS}
    worker = {"name": hostile, "hostname": hostile, "pid": 1, "queues": [hostile],
              "concurrency": 1, "alive": True, "heartbeat_age_seconds": 1.0,
              "uptime_seconds": 1.0, "running_jobs": 1, "running_tasks": [hostile]}
    stuck = {"id": 1, "queue": hostile, "task_name": hostile, "reason": "worker_dead",
             "worker_id": 1, "worker_name": hostile, "running_seconds": 1.0,
             "limit_seconds": 1.0}
    console = Console(width=400, record=True, force_terminal=True, color_system=None)
    console.print(render(Snapshot(queues=[queue], tasks=[task], workers=[worker], stuck=[stuck],
                                  database=hostile), interval=None, error=CONTROLS))
    frame = console.export_text(styles=False)
    assert not any(char in frame for char in "\x1b\x07\x9b\r\x7f\u202e\x00")
    assert frame.count("q\\x1b[2J\\x1b]0;owned\\x07") >= 9  # every hostile cell, escaped
    assert "[/][bold]" in frame  # shown as written, not read as markup
