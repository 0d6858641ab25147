"""When a schedule ticks: cron expressions read in a timezone, and fixed intervals.

Every argument and result is a timezone-aware instant. Nothing here reads a clock: callers pass
the database's `now()`, so workers whose clocks disagree compute the same ticks.

Cron expressions are read in local wall-clock time, and daylight-saving changes follow Vixie
cron (the behaviour of the system cron on Linux):

* a *fixed-time* expression (minute and hour fields both fixed, e.g. ``30 2 * * *``) whose wall
  time does not exist on the day clocks jump forward fires once, at the end of the gap (03:00);
  on the day clocks fall back it fires once, at the first of the two 02:30s;
* a *wildcard* expression (minute or hour field starting with ``*``, e.g. ``*/15 * * * *`` or
  ``0 * * * *``) follows real time: nothing fires for wall times that do not exist, and wall times
  that happen twice fire twice, so "every 15 minutes" stays 15 real minutes apart.

Interval schedules ignore timezones: their ticks are the multiples of the interval since an
anchor, by default the Unix epoch (every 30 s ticks at :00 and :30), so every worker derives the
same ticks with no state.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from pgqueue.errors import ConfigurationError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# Wall-clock candidates are generated from this far before/after the instant asked about: more
# than any UTC-offset change, so the candidates of a repeated hour are never missed.
_SEARCH_MARGIN = timedelta(hours=3)
_ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class Ticks(Protocol):
    """The tick instants of one schedule."""

    def iter_from(self, start: datetime) -> Iterator[datetime]:
        """Ticks at or after `start`, in increasing order (endless)."""
        ...

    def latest_at_or_before(self, end: datetime) -> datetime:
        """The last tick at or before `end`."""
        ...

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        """How many ticks fall in [start, end), counting at most `cap`."""
        ...


def next_after(ticks: Ticks, instant: datetime) -> datetime:
    """The first tick strictly after `instant`."""
    return next(ticks.iter_from(instant + MICROSECOND))


def ticks_between(ticks: Ticks, start: datetime, end: datetime) -> Iterator[datetime]:
    """Ticks in [start, end], increasing."""
    for tick in ticks.iter_from(start):
        if tick > end:
            return
        yield tick


class IntervalTicks:
    """Multiples of `every` since `anchor` (the Unix epoch unless given)."""

    def __init__(self, every: timedelta, anchor: datetime | None = None) -> None:
        if every < timedelta(seconds=1):
            raise ConfigurationError(f"every must be at least 1 second, not {every}")
        self.every = every
        self.anchor = EPOCH if anchor is None else anchor
        self._step = _microseconds(every)

    def _index_at_or_before(self, instant: datetime) -> int:
        return _microseconds(instant - self.anchor) // self._step

    def _tick(self, index: int) -> datetime:
        return (self.anchor + timedelta(microseconds=index * self._step)).astimezone(UTC)

    def iter_from(self, start: datetime) -> Iterator[datetime]:
        index = -(-_microseconds(start - self.anchor) // self._step)  # ceiling division
        while True:
            yield self._tick(index)
            index += 1

    def latest_at_or_before(self, end: datetime) -> datetime:
        return self._tick(self._index_at_or_before(end))

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        if end <= start:
            return 0
        first = -(-_microseconds(start - self.anchor) // self._step)
        last = self._index_at_or_before(end - MICROSECOND)
        return max(0, min(cap, last - first + 1))


class CronTicks:
    """A 5-field cron expression (or an @alias) read in an IANA timezone."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = expression
        self.zone = zone_for(timezone)
        expanded = _ALIASES.get(expression.strip().lower(), expression)
        fields = expanded.split()
        if len(fields) != 5 or not croniter.is_valid(expanded):
            raise ConfigurationError(
                f"cron must be 5 fields (minute hour day-of-month month day-of-week) or an "
                f"@alias, not {expression!r}; for periods under a minute use every="
            )
        self._expanded = expanded
        self.wildcard = fields[0].startswith("*") or fields[1].startswith("*")
        """Minute or hour starts with '*': ticks follow real time across DST changes."""
        try:
            croniter(expanded, datetime(2000, 1, 1)).get_next(datetime)
        except Exception as exc:  # croniter raises its own errors for impossible dates
            raise ConfigurationError(f"cron {expression!r} never fires: {exc}") from exc

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants a naive local wall time stands for (none, one, or two)."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        if _round_trips(first):  # the wall time happens twice (clocks fell back)
            instants = [first.astimezone(UTC)]
            if self.wildcard:
                instants.append(second.astimezone(UTC))
            return instants
        if self.wildcard:  # the wall time does not exist (clocks jumped forward)
            return []
        return [_end_of_gap(self.zone, second.astimezone(UTC), first.astimezone(UTC))]

    def _walls(self, start: datetime, *, backwards: bool) -> Iterator[datetime]:
        local = start.astimezone(self.zone).replace(tzinfo=None)
        # Only near an offset change can a wall time on the far side of `start` stand for an
        # instant on this side; elsewhere a minute of margin is enough (and much cheaper).
        before = (start - _SEARCH_MARGIN).astimezone(self.zone).utcoffset()
        after = (start + _SEARCH_MARGIN).astimezone(self.zone).utcoffset()
        margin = _SEARCH_MARGIN if before != after else timedelta(minutes=1)
        origin = local + margin if backwards else local - margin
        walls = croniter(self._expanded, origin)
        step = walls.get_prev if backwards else walls.get_next
        while True:
            yield step(datetime)

    def iter_from(self, start: datetime) -> Iterator[datetime]:
        # Wall times go up monotonically, and so does the first instant each one stands for;
        # only the second pass of a repeated hour comes later than that, so a small heap
        # releases instants in order once a later wall time's first instant passes them.
        pending: list[datetime] = []
        last: datetime | None = None
        for wall in self._walls(start, backwards=False):
            instants = self._instants(wall)
            for instant in instants:
                heapq.heappush(pending, instant)
            if not instants:
                continue
            while pending and pending[0] <= instants[0]:
                instant = heapq.heappop(pending)
                if instant >= start and instant != last:
                    last = instant
                    yield instant

    def latest_at_or_before(self, end: datetime) -> datetime:
        best: datetime | None = None
        for wall in self._walls(end, backwards=True):
            instants = self._instants(wall)
            if not instants:
                continue
            for instant in instants:
                if instant <= end and (best is None or instant > best):
                    best = instant
            if best is not None and instants[-1] < best:
                return best
        raise AssertionError("unreachable: cron walls are endless")

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        count = 0
        for tick in self.iter_from(start):
            if tick >= end or count >= cap:
                break
            count += 1
        return count


def zone_for(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown timezone {name!r} (use an IANA name such as "
                                 "'Europe/Paris')") from exc


def ticks_for(*, cron: str | None, every: timedelta | None, timezone: str,
              anchor: datetime | None = None) -> Ticks:
    if (cron is None) == (every is None):
        raise ConfigurationError("give exactly one of cron= or every=")
    if cron is not None:
        return CronTicks(cron, timezone)
    assert every is not None
    return IntervalTicks(every, anchor)


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _round_trips(local: datetime) -> bool:
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) == (
        local.replace(tzinfo=None))


def _end_of_gap(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant clocks jumped forward, found by bisection between a UTC instant before it
    and one after it (transitions fall on whole seconds, and so do cron ticks)."""
    low, high = before, after
    while high - low > timedelta(seconds=1):
        middle = (low + (high - low) / 2).replace(microsecond=0)
        if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
            low = middle
        else:
            high = middle
    return high
