"""The app the idle-cost tests run with --app: one task and a nightly schedule, so the
periodic scheduler runs beside the heartbeat and the poll while nothing is due."""

from __future__ import annotations

import pgqueue
from pgqueue.periodic import periodic

app = pgqueue.App()


@periodic(app, cron="0 3 * * *", id="nightly")
@app.task(name="idle.nightly", retry=False)
def nightly() -> None:
    """Never due during a test (unless one runs across 03:00 UTC, which costs one job)."""
