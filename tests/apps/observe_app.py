"""Tasks for the DBA-surface, `pgqueue top` and metrics tests; worker subprocesses import this
module with `--app tests.apps.observe_app:app` (the DSN comes from PGQUEUE_DSN)."""

from __future__ import annotations

import time

import pgqueue

app = pgqueue.App()


@app.task(name="observe.quick", queue="emails", retry=False)
def quick(n: int = 0) -> int:
    return n


@app.task(name="observe.broken", queue="emails", retry=False)
def broken(message: str = "smtp refused") -> None:
    raise ConnectionError(message)


@app.task(name="observe.slow", queue="reports", retry=False, timeout=60, pass_context=True)
def slow(context: pgqueue.JobContext, seconds: float = 30.0) -> str:
    """Runs until `seconds` pass or the job is cancelled, so tests can watch a running job;
    reports a quarter done at once."""
    context.set_progress(0.25, "rendering page 1 of 4")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not context.should_abort():
        time.sleep(0.02)
    return "done"
