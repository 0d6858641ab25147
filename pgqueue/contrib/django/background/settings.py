"""django-background-tasks' settings (``background_task.settings.app_settings``): the same
names and defaults, read from Django's settings at each use, so ``override_settings`` applies
to tasks already decorated and enqueued."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

from django.conf import settings


def _default_delay(attempts: int) -> float:
    return attempts**4 + 5


class AppSettings:
    @property
    def MAX_ATTEMPTS(self) -> int:
        """Attempts before a task is marked failed (default 25)."""
        return int(getattr(settings, "MAX_ATTEMPTS", 25))

    @property
    def BACKGROUND_TASK_MAX_ATTEMPTS(self) -> int:
        return self.MAX_ATTEMPTS

    @property
    def MAX_RUN_TIME(self) -> float:
        """Seconds a task may run: its timeout in a worker, and the age after which another
        process may take its lock over (default 3600)."""
        return getattr(settings, "MAX_RUN_TIME", 3600)

    @property
    def BACKGROUND_TASK_MAX_RUN_TIME(self) -> float:
        return self.MAX_RUN_TIME

    @property
    def BACKGROUND_TASK_RUN_ASYNC(self) -> bool:
        """Run tasks in parallel threads (default False)."""
        return bool(getattr(settings, "BACKGROUND_TASK_RUN_ASYNC", False))

    @property
    def BACKGROUND_TASK_ASYNC_THREADS(self) -> int:
        """Threads when running async (default: the CPU count)."""
        return int(getattr(settings, "BACKGROUND_TASK_ASYNC_THREADS", _cpu_count()))

    @property
    def BACKGROUND_TASK_PRIORITY_ORDERING(self) -> str:
        """The library's ordering prefix: ``"-"`` (DESC, higher first) or ``""`` (ASC).
        pgqueue always runs the higher priority first (docs/django.md)."""
        return "" if getattr(settings, "BACKGROUND_TASK_PRIORITY_ORDERING", "DESC") == "ASC" \
            else "-"

    @property
    def BACKGROUND_TASK_DELAY_BETWEEN_ATTEMPTS(self) -> Callable[[int], float]:
        """pgqueue's addition: seconds, or a callable of the attempts done, before the next
        attempt; the library's ``attempts ** 4 + 5`` by default."""
        configured = getattr(settings, "BACKGROUND_TASK_DELAY_BETWEEN_ATTEMPTS", _default_delay)
        if callable(configured):
            return configured
        seconds = float(configured)
        return lambda attempts: seconds


def _cpu_count() -> int:
    try:
        return multiprocessing.cpu_count()
    except NotImplementedError:
        return 1


app_settings = AppSettings()

__all__ = ["AppSettings", "app_settings"]
