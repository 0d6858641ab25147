"""django-background-tasks' settings, read with that library's names and defaults."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

from django.conf import settings


def max_attempts() -> int:
    """``MAX_ATTEMPTS``: attempts before a task is marked failed (default 25)."""
    return int(getattr(settings, "MAX_ATTEMPTS", 25))


def max_run_time() -> float:
    """``MAX_RUN_TIME``: seconds a task may run before it is failed and retried (default 3600)."""
    return float(getattr(settings, "MAX_RUN_TIME", 3600))


def _default_delay(attempts: int) -> float:
    return attempts**4 + 5


def delay_between_attempts() -> Callable[[int], float]:
    """``BACKGROUND_TASK_DELAY_BETWEEN_ATTEMPTS``: seconds, or a callable of the number of
    attempts done; default ``attempts ** 4 + 5``."""
    configured = getattr(settings, "BACKGROUND_TASK_DELAY_BETWEEN_ATTEMPTS", _default_delay)
    if callable(configured):
        return configured
    seconds = float(configured)
    return lambda attempts: seconds


def run_async() -> bool:
    """``BACKGROUND_TASK_RUN_ASYNC``: run tasks in parallel threads (default False)."""
    return bool(getattr(settings, "BACKGROUND_TASK_RUN_ASYNC", False))


def async_threads() -> int:
    """``BACKGROUND_TASK_ASYNC_THREADS``: threads when running async (default: CPU count)."""
    return int(getattr(settings, "BACKGROUND_TASK_ASYNC_THREADS", multiprocessing.cpu_count()))

