"""django-background-tasks' signals (``background_task.signals``), sent with the library's
senders and arguments by the worker and by ``tasks.run_next_task()``:

- ``task_created(sender=DBTaskRunner, task)``: a ``@background`` call scheduled a task;
- ``task_started(sender=Task)`` / ``task_finished(sender=Task)``: around every attempt;
- ``task_successful(sender=Task, task_id, completed_task)``: it succeeded;
- ``task_error(sender=<exception class>, task)``: an attempt raised;
- ``task_rescheduled(sender=Task, task)``: it will be tried again;
- ``task_failed(sender=Task, task_id, completed_task)``: it failed for good.
"""

from __future__ import annotations

from typing import Any

import django.dispatch
from django.db import connections

from pgqueue.contrib.django.background.settings import app_settings

task_created = django.dispatch.Signal()
task_error = django.dispatch.Signal()
task_rescheduled = django.dispatch.Signal()
task_failed = django.dispatch.Signal()
task_successful = django.dispatch.Signal()
task_started = django.dispatch.Signal()
task_finished = django.dispatch.Signal()


def reset_queries(**kwargs: Any) -> None:
    """As the library: with threads, each task starts with an empty query log."""
    if app_settings.BACKGROUND_TASK_RUN_ASYNC:
        for connection in connections.all():
            connection.queries_log.clear()


def close_old_connections(**kwargs: Any) -> None:
    """As the library: with threads, drop connections past their lifetime around each task."""
    if app_settings.BACKGROUND_TASK_RUN_ASYNC:
        for connection in connections.all():
            connection.close_if_unusable_or_obsolete()


task_started.connect(reset_queries)
task_started.connect(close_old_connections)
task_finished.connect(close_old_connections)

__all__ = ["task_created", "task_error", "task_failed", "task_finished", "task_rescheduled",
           "task_started", "task_successful"]
