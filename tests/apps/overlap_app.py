"""The app the overlap test runs with --app: a 1-second schedule whose job takes 2.5 s, declared
overlap=False, so each tick falling while the previous job runs must be skipped."""

from __future__ import annotations

import time
from datetime import timedelta

import pgqueue
from pgqueue.periodic import periodic

app = pgqueue.App()

SCHEDULE_ID = "slow-every-second"
JOB_SECONDS = 2.5


@periodic(app, every=timedelta(seconds=1), id=SCHEDULE_ID, overlap=False)
@app.task(retry=False)
def slow_tick() -> None:
    time.sleep(JOB_SECONDS)
