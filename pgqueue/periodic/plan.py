"""Which ticks a scheduler enqueues when it finds a schedule due: the misfire policy.

A tick is *on time* when the scheduler reaches it at most `misfire_grace` after it fell (the
normal case, milliseconds); on-time ticks always run, one job each. A tick found later than that
was *missed* (no scheduler was running: every worker was down, or the database was):

* ``skip`` (default): run the latest due tick once, unless an on-time tick already runs;
  the other missed ticks are skipped. Coalesces an outage into one catch-up run.
* ``all``: run every missed tick that fell within `misfire_window` of now, oldest first
  (at most `MAX_TICKS_PER_FIRE`, the newest ones); older ones are skipped.
* ``none``: run no missed tick; only on-time ones.

Pure functions of the schedule's ticks and the database's now(), so they are unit-tested with
fixed instants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pgqueue.periodic.ticks import MICROSECOND, Ticks, next_after, ticks_between

Misfire = Literal["skip", "all", "none"]
MISFIRE_POLICIES: tuple[Misfire, ...] = ("skip", "all", "none")
MAX_TICKS_PER_FIRE = 10_000
"""The most jobs one scheduler pass enqueues for one schedule (a backfill beyond is skipped)."""
_COUNT_CAP = 1_000_000


@dataclass(frozen=True, slots=True)
class FirePlan:
    run: list[datetime]
    """Ticks to enqueue, oldest first."""
    skipped: int
    """Due ticks deliberately not enqueued (misfire policy, or the per-pass cap)."""
    next_tick_at: datetime
    """The first tick after now: where the schedule waits next."""


def plan_fire(
    ticks: Ticks, *, due_from: datetime, now: datetime, misfire: Misfire,
    misfire_grace: timedelta, misfire_window: timedelta, ends_at: datetime | None = None,
) -> FirePlan:
    """Plan a pass over one schedule whose first unfired tick is `due_from`; no tick after
    `ends_at` runs."""
    next_tick = next_after(ticks, now)
    if due_from > now:
        return FirePlan([], 0, due_from)
    last = now if ends_at is None else min(now, ends_at)
    on_time_from = max(due_from, now - misfire_grace)
    on_time = list(_capped(ticks_between(ticks, on_time_from, last)))
    missed_total = ticks.count_between(due_from, min(on_time_from, last + MICROSECOND),
                                       _COUNT_CAP)
    missed_run: list[datetime] = []
    if missed_total:
        if misfire == "all":
            window_from = max(due_from, now - misfire_window)
            missed_run = [tick for tick in _capped(ticks_between(ticks, window_from, last))
                          if tick < on_time_from]
        elif misfire == "skip" and not on_time:
            missed_run = [ticks.latest_at_or_before(last)]
    run = (missed_run + on_time)[-MAX_TICKS_PER_FIRE:]
    skipped = missed_total + len(on_time) - len(run)
    return FirePlan(run, skipped, next_tick)


def _capped(ticks: Iterable[datetime]) -> list[datetime]:
    """At most the newest MAX_TICKS_PER_FIRE of an increasing, finite run of ticks."""
    kept: list[datetime] = []
    for tick in ticks:
        kept.append(tick)
        if len(kept) > 2 * MAX_TICKS_PER_FIRE:
            del kept[:MAX_TICKS_PER_FIRE]
    return kept[-MAX_TICKS_PER_FIRE:]


def without_overlap(run: list[datetime], *, overlap: bool,
                    previous_unfinished: bool) -> tuple[list[datetime], int]:
    """The ticks to enqueue for a schedule with `overlap` False (and how many are skipped): none
    while the previous tick's job is unfinished, else only the newest due tick (ticks due
    together would run side by side)."""
    if overlap or not run:
        return run, 0
    if previous_unfinished:
        return [], len(run)
    return run[-1:], len(run) - 1
