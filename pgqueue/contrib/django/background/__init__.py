"""A drop-in for django-background-tasks: add ``"pgqueue.contrib.django.background"`` to
``INSTALLED_APPS`` (beside ``"pgqueue.contrib.django"``) and change the imports::

    from background_task import background
    from background_task.models import Task

become::

    from pgqueue.contrib.django.background import background
    from pgqueue.contrib.django.background.models import Task

``Task`` and ``CompletedTask`` are also importable from this package. Tasks become pgqueue jobs
(rows of ``pgqueue.jobs``), run by ``manage.py process_tasks`` or ``manage.py pgqueue worker``.
"""

from __future__ import annotations

from typing import Any

from pgqueue.contrib.django.background.decorator import TaskProxy, TaskSchedule, background, tasks

__all__ = ["CompletedTask", "Task", "TaskProxy", "TaskSchedule", "background", "tasks"]


def __getattr__(name: str) -> Any:
    # The models can only be imported once Django's app registry is ready; this package is also
    # the app module Django imports while it loads apps, so they are resolved on first use.
    if name in ("Task", "CompletedTask"):
        from pgqueue.contrib.django.background import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
