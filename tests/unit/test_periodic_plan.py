"""Misfire policies, planned from fixed instants (no clock, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgqueue.periodic import plan as plan_module
from pgqueue.periodic.plan import plan_fire
from pgqueue.periodic.ticks import CronTicks, IntervalTicks

MINUTE = timedelta(minutes=1)
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EVERY_MINUTE = IntervalTicks(MINUTE)


def plan(misfire: str, *, due_from: datetime, now: datetime, grace: timedelta = MINUTE,
         window: timedelta = timedelta(days=1), ticks: object = EVERY_MINUTE):
    return plan_fire(ticks, due_from=due_from, now=now, misfire=misfire,  # type: ignore[arg-type]
                     misfire_grace=grace, misfire_window=window)


@pytest.mark.parametrize("misfire", ["skip", "all", "none"])
def test_an_on_time_tick_runs_under_every_policy(misfire: str) -> None:
    result = plan(misfire, due_from=T0, now=T0 + timedelta(milliseconds=7))
    assert result.run == [T0] and result.skipped == 0
    assert result.next_tick_at == T0 + MINUTE


@pytest.mark.parametrize("misfire", ["skip", "all", "none"])
def test_nothing_runs_before_the_tick(misfire: str) -> None:
    result = plan(misfire, due_from=T0, now=T0 - timedelta(seconds=1))
    assert result.run == [] and result.next_tick_at == T0


# An outage: the schedule waited for T0, the scheduler comes back at T0 + 10m30s. Ticks
# T0 .. T0+9m are more than a minute late (missed); T0+10m is 30 s late (on time).
OUTAGE_END = T0 + timedelta(minutes=10, seconds=30)


def test_skip_coalesces_an_outage_into_the_on_time_tick() -> None:
    result = plan("skip", due_from=T0, now=OUTAGE_END)
    assert result.run == [T0 + 10 * MINUTE]
    assert result.skipped == 10
    assert result.next_tick_at == T0 + 11 * MINUTE


def test_skip_runs_the_latest_missed_tick_once_when_none_is_on_time() -> None:
    daily = CronTicks("0 3 * * *")
    due = datetime(2025, 6, 1, 3, tzinfo=UTC)
    back = datetime(2025, 6, 4, 9, tzinfo=UTC)  # three days and six hours later
    result = plan("skip", due_from=due, now=back, ticks=daily)
    assert result.run == [datetime(2025, 6, 4, 3, tzinfo=UTC)]
    assert result.skipped == 3
    assert result.next_tick_at == datetime(2025, 6, 5, 3, tzinfo=UTC)


def test_all_backfills_every_missed_tick_oldest_first() -> None:
    result = plan("all", due_from=T0, now=OUTAGE_END)
    assert result.run == [T0 + n * MINUTE for n in range(11)]
    assert result.skipped == 0


def test_all_stops_at_the_window() -> None:
    result = plan("all", due_from=T0, now=OUTAGE_END, window=timedelta(minutes=5))
    assert result.run == [T0 + n * MINUTE for n in range(6, 11)]
    assert result.skipped == 6


def test_all_is_capped_per_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_module, "MAX_TICKS_PER_FIRE", 4)
    result = plan("all", due_from=T0, now=OUTAGE_END)
    assert result.run == [T0 + n * MINUTE for n in range(7, 11)]
    assert result.skipped == 7


def test_none_runs_only_on_time_ticks() -> None:
    result = plan("none", due_from=T0, now=OUTAGE_END)
    assert result.run == [T0 + 10 * MINUTE]
    assert result.skipped == 10
    late = plan("none", due_from=T0, now=T0 + timedelta(minutes=1, seconds=59),
                grace=timedelta(seconds=30), ticks=IntervalTicks(timedelta(hours=1)))
    assert late.run == [] and late.skipped == 1
    assert late.next_tick_at == T0 + timedelta(hours=1)


def test_grace_zero_treats_any_lateness_as_a_misfire() -> None:
    now = T0 + 3 * MINUTE + timedelta(milliseconds=1)
    assert plan("none", due_from=T0, now=now, grace=timedelta(0)).run == []
    assert plan("skip", due_from=T0, now=now, grace=timedelta(0)).run == [T0 + 3 * MINUTE]
    assert len(plan("all", due_from=T0, now=now, grace=timedelta(0)).run) == 4


def test_ticks_within_grace_all_run() -> None:
    every_10s = IntervalTicks(timedelta(seconds=10))
    result = plan("skip", due_from=T0, now=T0 + timedelta(seconds=35), ticks=every_10s)
    assert result.run == [T0 + timedelta(seconds=s) for s in (0, 10, 20, 30)]


def test_no_tick_after_the_end_runs() -> None:
    end = T0 + 2 * MINUTE + timedelta(seconds=5)
    result = plan_fire(EVERY_MINUTE, due_from=T0, now=T0 + 10 * MINUTE, misfire="all",
                       misfire_grace=MINUTE, misfire_window=timedelta(days=1), ends_at=end)
    assert result.run == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert result.next_tick_at > end
    skip = plan_fire(EVERY_MINUTE, due_from=T0, now=T0 + 10 * MINUTE, misfire="skip",
                     misfire_grace=MINUTE, misfire_window=timedelta(days=1), ends_at=end)
    assert skip.run == [T0 + 2 * MINUTE] and skip.skipped == 2
