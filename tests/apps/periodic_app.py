"""The app the periodic process tests run with --app: one task on a 1-second schedule.

Its jobs do nothing: the tests read the jobs and schedule_ticks tables, where run_at is the tick
and started_at when a worker began the job (both database time).

For the clock-skew test a worker's clock is moved: by libfaketime (FAKETIME in the environment,
which moves every clock read of the process) or, where libfaketime is missing, by
PGQUEUE_TEST_CLOCK_SKEW_S (which moves Python's time.time). The worker prints the time it
believes it is, so the test can check the skew took effect.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pgqueue
from pgqueue.periodic import periodic

_SKEW_S = float(os.environ.get("PGQUEUE_TEST_CLOCK_SKEW_S") or 0)
if _SKEW_S:
    _real_time, _real_time_ns = time.time, time.time_ns
    time.time = lambda: _real_time() + _SKEW_S
    time.time_ns = lambda: _real_time_ns() + int(_SKEW_S * 1e9)
if _SKEW_S or os.environ.get("FAKETIME"):
    believed = datetime.fromtimestamp(time.time(), UTC)
    print(f"periodic_app: this process believes it is {believed.isoformat()}", flush=True)

app = pgqueue.App()

SCHEDULE_ID = "every-second"


@periodic(app, every=timedelta(seconds=1), id=SCHEDULE_ID)
@app.task(retry=False)
def tick() -> None:
    """A periodic job with nothing to do but be counted."""
