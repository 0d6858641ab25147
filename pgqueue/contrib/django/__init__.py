"""pgqueue for Django: add ``"pgqueue.contrib.django"`` to ``INSTALLED_APPS``.

What it gives (see docs/django.md):

- ``manage.py migrate`` runs the SQL files of ``migrations_sql/`` (thin Django migrations);
- ``pgqueue.contrib.django.app.app``, a `pgqueue.App` on the Django database, whose enqueues run
  on Django's own connection and so join ``transaction.atomic()``; tasks are autodiscovered from
  every installed app's ``tasks.py``;
- ``pgqueue.contrib.django.backend.PgQueueBackend``, a backend for Django's Tasks framework;
- ``pgqueue.contrib.django.background``, a drop-in for django-background-tasks (a second app);
- ``wait_for(task_result, timeout)`` / ``await await_result(...)``: a Task's result once its
  job ended, woken by NOTIFY (``pgqueue.contrib.django.results``);
- ``manage.py pgqueue ...`` (the pgqueue CLI) and an admin for jobs.

Nothing outside this package imports Django.
"""

from __future__ import annotations

from typing import Any

__all__ = ["await_result", "wait_for"]


def __getattr__(name: str) -> Any:
    """`wait_for` and `await_result` from .results, imported at first use: this package is
    imported (INSTALLED_APPS) before Django's settings are ready."""
    if name in __all__:
        from pgqueue.contrib.django import results

        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
