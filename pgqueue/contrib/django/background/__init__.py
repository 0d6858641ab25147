"""A drop-in for django-background-tasks 1.2.8: add ``"pgqueue.contrib.django.background"`` to
``INSTALLED_APPS`` (beside ``"pgqueue.contrib.django"``) and replace the import prefix
``background_task`` by ``pgqueue.contrib.django.background``; the modules mirror the library's:

    background_task              -> pgqueue.contrib.django.background (``background``)
    background_task.models       -> .models (``Task``, ``CompletedTask``)
    background_task.tasks        -> .tasks (``tasks``, ``TaskSchedule``, ``TaskProxy``, ...)
    background_task.exceptions   -> .exceptions (``InvalidTaskError``, ...)
    background_task.settings     -> .settings (``app_settings``)
    background_task.signals      -> .signals

Tasks become pgqueue jobs (rows of ``pgqueue.jobs``), run by ``manage.py process_tasks`` or
``manage.py pgqueue worker``, or in-process by ``tasks.run_next_task()``.
"""

from __future__ import annotations

from typing import Any

from pgqueue.contrib.django.background.tasks import TaskProxy, TaskSchedule, tasks

__all__ = ["CompletedTask", "Task", "TaskProxy", "TaskSchedule", "background", "tasks"]


def background(*args: Any, **kwargs: Any) -> Any:
    """``@background``, ``@background(schedule=..., name=..., queue=...,
    remove_existing_tasks=...)``: see `tasks.Tasks.background`."""
    return tasks.background(*args, **kwargs)


def __getattr__(name: str) -> Any:
    # The models can only be imported once Django's app registry is ready; this package is also
    # the app module Django imports while it loads apps, so they are resolved on first use.
    if name in ("Task", "CompletedTask"):
        from pgqueue.contrib.django.background import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
