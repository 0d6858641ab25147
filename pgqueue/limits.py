"""Queue limits declared in code (`App.queue`): validated here, written to
pgqueue.queue_limits by every worker at start, enforced by the claim (migration 0010).

Operators change them at runtime (`pgqueue queue`, `pgqueue.set_queue_limit()`, the Django
admin): a queue an operator has set (`set_by = 'operator'`) keeps the operator's limits until
they are cleared; declarations only rewrite what code set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgqueue.errors import InvalidLimit
from pgqueue.validation import MAX_QUEUE_NAME, check_name

RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"\s*([0-9]{1,9})\s*/\s*([smhd])\s*")
MAX_LIMIT = 999_999_999


def parse_rate_limit(rate: str) -> tuple[int, int]:
    """'100/m' -> (100, 60): at most 100 starts in any 60 s (Celery's spelling)."""
    match = _RATE.fullmatch(rate) if isinstance(rate, str) else None
    if match is None or int(match.group(1)) == 0:
        raise InvalidLimit(
            f"rate_limit must look like 10/s, 100/m, 1000/h or 5/d (N > 0), not {rate!r}")
    return int(match.group(1)), RATE_PERIODS[match.group(2)]


def check_limit(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIMIT:
        raise InvalidLimit(f"{what} must be a whole number from 1 to {MAX_LIMIT}, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class QueueLimits:
    queue: str
    concurrency: int | None = None
    """At most this many jobs of the queue running at once, on all workers together."""
    per_key_concurrency: int | None = None
    """At most this many running at once per `concurrency_key` (jobs without one: no limit)."""
    rate_limit: str | None = None
    """At most N job starts in any window of the period: "10/s", "100/m", "1000/h", "5/d"."""

    def __post_init__(self) -> None:
        check_name(self.queue, "queue", MAX_QUEUE_NAME)
        for name in ("concurrency", "per_key_concurrency"):
            value = getattr(self, name)
            if value is not None:
                check_limit(value, name)
        if self.rate_limit is not None:
            parse_rate_limit(self.rate_limit)

    def settings(self) -> dict[str, str | None]:
        """Each limit as pgqueue.set_queue_limit() takes it (None clears it)."""
        return {
            "concurrency": None if self.concurrency is None else str(self.concurrency),
            "per_key_concurrency": None if self.per_key_concurrency is None
            else str(self.per_key_concurrency),
            "rate_limit": self.rate_limit,
        }
