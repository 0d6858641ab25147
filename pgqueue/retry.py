"""Retry policies: how many attempts a task gets and how long to wait between them."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pgqueue.errors import ConfigurationError
from pgqueue.validation import check_max_attempts

Backoff = Literal["exponential", "fixed"] | Callable[[int], float]

DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` counts the first run; `backoff` maps the attempt that just failed to a
    delay in seconds: exponential (base * 2**(attempt-1), capped, with full jitter so a burst of
    failures does not retry in lockstep), fixed (base), or any callable."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = "exponential"
    base_delay: float = 1.0
    max_delay: float = 3600.0
    jitter: bool = True

    def __post_init__(self) -> None:
        check_max_attempts(self.max_attempts)
        if not (callable(self.backoff) or self.backoff in ("exponential", "fixed")):
            raise ConfigurationError(
                f"backoff must be 'exponential', 'fixed' or a callable, not {self.backoff!r}"
            )
        if self.base_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("retry delays must not be negative")

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait before the attempt after `attempt` (1-based)."""
        if callable(self.backoff):
            delay = float(self.backoff(attempt))
        elif self.backoff == "fixed":
            delay = self.base_delay
        else:
            delay = min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 62))
            if self.jitter:
                delay = random.uniform(delay / 2, delay)
        if not math.isfinite(delay) or delay < 0:
            raise ConfigurationError(f"backoff returned an invalid delay: {delay!r}")
        return min(delay, self.max_delay) if not callable(self.backoff) else delay


def coerce_retry(retry: RetryPolicy | int | bool | None) -> RetryPolicy:
    """`retry=None` is the default policy; `retry=N` allows N retries (N + 1 attempts);
    `retry=False` (or 0) runs once; `retry=True` is the default policy."""
    if isinstance(retry, RetryPolicy):
        return retry
    if retry is None or retry is True:
        return RetryPolicy()
    if retry is False:
        return RetryPolicy(max_attempts=1)
    if isinstance(retry, int) and retry >= 0:
        return RetryPolicy(max_attempts=retry + 1)
    raise ConfigurationError(
        f"retry must be a RetryPolicy, a number of retries or a bool, not {retry!r}"
    )
