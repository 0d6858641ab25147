"""Tick math: cron in a timezone across DST changes (checked against a brute-force reading of
the rules, minute by minute), and epoch-aligned intervals."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from pgqueue.errors import ConfigurationError
from pgqueue.periodic.ticks import CronTicks, IntervalTicks, next_after, ticks_between

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
# Paris: clocks jump 02:00 -> 03:00 on 2025-03-30 and fall 03:00 -> 02:00 on 2025-10-26.
SPRING_DAY = (datetime(2025, 3, 29, 18, tzinfo=UTC), datetime(2025, 3, 31, 6, tzinfo=UTC))
AUTUMN_DAY = (datetime(2025, 10, 25, 18, tzinfo=UTC), datetime(2025, 10, 27, 6, tzinfo=UTC))


def local(ticks: list[datetime], zone: ZoneInfo = PARIS) -> list[str]:
    return [f"{t.astimezone(zone):%d %H:%M%z}" for t in ticks]


def between(expression: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    return list(ticks_between(CronTicks(expression, zone), start, end))


def brute_force(expression: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The DST rules read literally, one UTC minute at a time (independent of CronTicks)."""
    fields = expression.split()
    wildcard = fields[0].startswith("*") or fields[1].startswith("*")
    ticks: set[datetime] = set()
    instant = start
    while instant <= end:
        wall = instant.astimezone(zone)
        if croniter.match(expression, wall.replace(tzinfo=None)) and (
                wall.fold == 0 or wildcard):
            ticks.add(instant)
        instant += timedelta(minutes=1)
    # Wall times that do not exist: a fixed-time expression fires once, when the gap ends.
    wall = start.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    while wall <= end.astimezone(zone).replace(tzinfo=None):
        aware = wall.replace(tzinfo=zone)
        exists = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
        if not exists and not wildcard and croniter.match(expression, wall):
            after_gap = wall
            while after_gap.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(
                    tzinfo=None) != after_gap:
                after_gap += timedelta(minutes=1)
            gap_end = after_gap.replace(tzinfo=zone).astimezone(UTC)
            if start <= gap_end <= end:
                ticks.add(gap_end)
        wall += timedelta(minutes=1)
    return sorted(ticks)


@pytest.mark.parametrize("expression", [
    "0 * * * *", "30 * * * *", "*/15 * * * *", "*/20 2 * * *", "30 2 * * *", "0 2 * * *",
    "15 3 * * *", "45 1 * * *", "0 0 * * *", "5 2,3 * * *", "0 */2 * * *",
])
@pytest.mark.parametrize("zone", [PARIS, NEW_YORK])
@pytest.mark.parametrize("days", ["spring", "autumn"])
def test_cron_ticks_follow_the_dst_rules(expression: str, zone: ZoneInfo, days: str) -> None:
    year = 2025
    if zone is NEW_YORK:  # 2025-03-09 and 2025-11-02, at 02:00 local
        span = ((datetime(year, 3, 9, 0, tzinfo=UTC), datetime(year, 3, 9, 16, tzinfo=UTC))
                if days == "spring" else
                (datetime(year, 11, 2, 0, tzinfo=UTC), datetime(year, 11, 2, 16, tzinfo=UTC)))
    else:
        span = ((datetime(year, 3, 29, 18, tzinfo=UTC), datetime(year, 3, 30, 10, tzinfo=UTC))
                if days == "spring" else
                (datetime(year, 10, 25, 18, tzinfo=UTC), datetime(year, 10, 26, 10, tzinfo=UTC)))
    expected = brute_force(expression, zone, *span)
    assert between(expression, zone.key, *span) == expected


def test_spring_forward_in_paris() -> None:
    # Hourly: the 02:00 that does not exist is simply absent (23 ticks that day).
    hourly = between("0 * * * *", "Europe/Paris", datetime(2025, 3, 29, 23, tzinfo=UTC),
                     datetime(2025, 3, 30, 21, 59, tzinfo=UTC))
    assert len(hourly) == 23
    assert local(hourly[:3]) == ["30 00:00+0100", "30 01:00+0100", "30 03:00+0200"]
    # Daily at 02:30 (a time that does not exist that day) fires once, when the gap ends.
    daily = between("30 2 * * *", "Europe/Paris", *SPRING_DAY)
    assert local(daily) == ["30 03:00+0200", "31 02:30+0200"]


def test_fall_back_in_paris() -> None:
    # Hourly follows real time: 02:00 happens twice, so there are 25 ticks that day.
    hourly = between("0 * * * *", "Europe/Paris", datetime(2025, 10, 25, 22, tzinfo=UTC),
                     datetime(2025, 10, 26, 22, 59, tzinfo=UTC))
    assert len(hourly) == 25
    assert local(hourly[1:5]) == ["26 01:00+0200", "26 02:00+0200", "26 02:00+0100",
                                  "26 03:00+0100"]
    # Daily at 02:30 runs once, at the first 02:30.
    daily = between("30 2 * * *", "Europe/Paris", *AUTUMN_DAY)
    assert local(daily) == ["26 02:30+0200", "27 02:30+0100"]
    # Every 15 minutes stays 15 real minutes apart through the repeated hour.
    quarter = between("*/15 * * * *", "Europe/Paris", datetime(2025, 10, 25, 23, tzinfo=UTC),
                      datetime(2025, 10, 26, 2, tzinfo=UTC))
    gaps = {b - a for a, b in itertools.pairwise(quarter)}
    assert gaps == {timedelta(minutes=15)} and len(quarter) == 13


@pytest.mark.parametrize("expression", ["*/20 * * * *", "30 2 * * *", "0 * * * *",
                                        "7 1-3 * * *"])
def test_next_and_latest_from_any_instant_match_brute_force(expression: str) -> None:
    ticks = CronTicks(expression, "Europe/Paris")
    rng = random.Random(expression)
    for span in (SPRING_DAY, AUTUMN_DAY):
        expected = brute_force(expression, PARIS, *span)
        for _ in range(150):
            instant = span[0] + timedelta(hours=6, seconds=rng.randrange(0, 20 * 3600))
            later = [t for t in expected if t > instant]
            earlier = [t for t in expected if t <= instant]
            if later:
                assert next_after(ticks, instant) == later[0], instant
            if earlier:
                assert ticks.latest_at_or_before(instant) == earlier[-1], instant


def test_intervals_are_multiples_since_the_epoch() -> None:
    every_30s = IntervalTicks(timedelta(seconds=30))
    at = datetime(2025, 1, 1, 12, 0, 10, 500, tzinfo=UTC)
    assert every_30s.latest_at_or_before(at) == datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert next_after(every_30s, at) == datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC)
    tick = datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC)
    assert next_after(every_30s, tick) == tick + timedelta(seconds=30)
    assert every_30s.latest_at_or_before(tick) == tick
    assert every_30s.count_between(at, at + timedelta(minutes=5), 1000) == 10
    assert every_30s.count_between(at, at + timedelta(minutes=5), 3) == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"expression": "* * * * * *"}, "5 fields"),
    ({"expression": "61 * * * *"}, "5 fields"),
    ({"expression": "0 0 31 2 *"}, "never fires"),
    ({"expression": "0 * * * *", "timezone": "Mars/Olympus"}, "unknown timezone"),
])
def test_bad_cron_is_refused(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CronTicks(**kwargs)


def test_intervals_can_count_from_an_anchor() -> None:
    anchor = datetime(2025, 1, 1, 12, 0, 7, tzinfo=UTC)
    hourly = IntervalTicks(timedelta(hours=1), anchor)
    assert next_after(hourly, datetime(2025, 3, 1, tzinfo=UTC)) == datetime(
        2025, 3, 1, 0, 0, 7, tzinfo=UTC)
    assert hourly.latest_at_or_before(anchor - timedelta(seconds=1)) == anchor - timedelta(hours=1)


def test_aliases_and_short_intervals() -> None:
    assert CronTicks("@hourly").wildcard and not CronTicks("@daily").wildcard
    with pytest.raises(ConfigurationError, match="at least 1 second"):
        IntervalTicks(timedelta(milliseconds=500))
