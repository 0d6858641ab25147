"""Retry policies: how many attempts a task gets, which errors are worth another one, and how
long to wait between them."""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pgqueue.errors import ConfigurationError
from pgqueue.validation import check_max_attempts

Backoff = (Literal["exponential", "fixed"] | Callable[[int], float]
           | Callable[[int, BaseException], float])

DEFAULT_MAX_ATTEMPTS = 3
ExceptionTypes = tuple[type[BaseException], ...]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` counts the first run; `backoff` maps the attempt that just failed to a
    delay in seconds: exponential (base * 2**(attempt-1), capped, with full jitter so a burst of
    failures does not retry in lockstep), fixed (base), or any callable, given the attempt and,
    if it takes a second parameter, the exception.

    `retry_on`: only these exceptions (and their subclasses) are retried, others fail the job at
    once; empty means every exception. `dont_retry_on`: these fail at once, even when
    `retry_on` matches too (a narrower "no" wins). `pgqueue.Fail` always fails at once."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = "exponential"
    base_delay: float = 1.0
    max_delay: float = 3600.0
    jitter: bool = True
    retry_on: ExceptionTypes = ()
    dont_retry_on: ExceptionTypes = ()
    _backoff_takes_exception: bool = field(default=False, init=False, repr=False,
                                           compare=False)

    def __post_init__(self) -> None:
        check_max_attempts(self.max_attempts)
        if not (callable(self.backoff) or self.backoff in ("exponential", "fixed")):
            raise ConfigurationError(
                f"backoff must be 'exponential', 'fixed' or a callable, not {self.backoff!r}"
            )
        if self.base_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("retry delays must not be negative")
        for name in ("retry_on", "dont_retry_on"):
            value = getattr(self, name)
            if isinstance(value, type):
                value = (value,)
            if not (isinstance(value, tuple | list)
                    and all(isinstance(t, type) and issubclass(t, BaseException)
                            for t in value)):
                raise ConfigurationError(
                    f"{name} must be a tuple of exception classes, not {value!r}")
            object.__setattr__(self, name, tuple(value))
        if callable(self.backoff):
            object.__setattr__(self, "_backoff_takes_exception",
                               _takes_two_arguments(self.backoff))

    def should_retry(self, exc: BaseException) -> bool:
        """Whether this error is worth another attempt (attempts left aside)."""
        if self.dont_retry_on and isinstance(exc, self.dont_retry_on):
            return False
        return not self.retry_on or isinstance(exc, self.retry_on)

    def delay_after(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before the attempt after `attempt` (1-based), which raised `exc`."""
        if callable(self.backoff):
            if self._backoff_takes_exception:
                delay = float(self.backoff(attempt, exc))  # type: ignore[call-arg]
            else:
                delay = float(self.backoff(attempt))  # type: ignore[call-arg]
        elif self.backoff == "fixed":
            delay = self.base_delay
        else:
            delay = min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 62))
            if self.jitter:
                delay = random.uniform(delay / 2, delay)
        if not math.isfinite(delay) or delay < 0:
            raise ConfigurationError(f"backoff returned an invalid delay: {delay!r}")
        return min(delay, self.max_delay) if not callable(self.backoff) else delay


def _takes_two_arguments(func: Callable[..., float]) -> bool:
    """A backoff callable declared as f(attempt, exc) gets the exception; f(attempt) does not."""
    try:
        inspect.signature(func).bind(1, None)
    except TypeError:
        return False
    except ValueError:  # a builtin without a signature: call it the documented simple way
        return False
    return True


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
