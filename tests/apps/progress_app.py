"""Tasks for the progress and result tests (tests/integration/test_progress.py); process-pool
children import this module by name.

A task that must stay running while a test looks at it waits for a file the test creates (a
file, so a child process sees it too), with a deadline so a failed test never leaves it
hanging."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pgqueue

RESULT_CAP = 10_000
app = pgqueue.App(result_max_bytes=RESULT_CAP)


def _wait_for(flag: str) -> None:
    deadline = time.monotonic() + 60
    while not Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@app.task(pass_context=True)
def report_many(context: pgqueue.JobContext, count: int, seconds: float = 0.0) -> int:
    """`count` reports in a loop that takes about `seconds` (a pause every 1% of it)."""
    pause_every = max(count // 100, 1)
    for done in range(1, count + 1):
        context.set_progress(done / count, f"{done} of {count}")
        if seconds and done % pause_every == 0:
            time.sleep(seconds / 100)
    context.set_meta(items=count, unit="rows")
    return count


@app.task(pass_context=True, pool="process")
def report_many_in_child(context: pgqueue.JobContext, count: int, seconds: float = 0.0) -> int:
    return report_many.func(context, count, seconds)


@app.task(pass_context=True)
async def report_many_async(context: pgqueue.JobContext, count: int,
                            seconds: float = 0.0) -> int:
    pause_every = max(count // 100, 1)
    for done in range(1, count + 1):
        context.set_progress(done / count, f"{done} of {count}")
        if done % pause_every == 0:
            await asyncio.sleep(seconds / 100)
    context.set_meta({"items": count})
    return count


@app.task(pass_context=True)
def report_then_wait(context: pgqueue.JobContext, flag: str) -> str:
    context.set_progress(0.4, "resized 40 of 100")
    context.set_meta(stage="resize")
    _wait_for(flag)
    context.set_progress(1.0, "done")
    return "finished"


@app.task(pass_context=True, pool="process")
def report_then_wait_in_child(context: pgqueue.JobContext, flag: str) -> int:
    context.set_progress(0.4, f"child {os.getpid()}")
    _wait_for(flag)
    context.set_progress(0.9, "almost")
    return os.getpid()


@app.task
def sized_result(size: int) -> str:
    return "x" * size


@app.task(pool="process")
def sized_result_in_child(size: int) -> str:
    return "x" * size


@app.task(pass_context=True)
def bad_report(context: pgqueue.JobContext, kind: str) -> str:
    """Reports something that cannot be stored and returns the error's class name."""
    try:
        if kind == "progress":
            context.set_progress(float("nan"))
        else:
            context.set_meta(when={1, 2})
    except pgqueue.InvalidReport as exc:
        return type(exc).__name__
    return "accepted"
