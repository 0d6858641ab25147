"""The Django app ``pgqueue.contrib.django`` (label ``pgqueue``)."""

from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.utils.module_loading import autodiscover_modules


class PgQueueConfig(AppConfig):
    name = "pgqueue.contrib.django"
    label = "pgqueue"
    verbose_name = "pgqueue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pgqueue.contrib.django import checks  # noqa: F401  (registers the checks)

        # Every installed app's tasks.py, so a worker knows every task of the project.
        autodiscover_modules("tasks")
        # Schedules declared in settings rather than in task code (docs/periodic.md).
        schedules = getattr(settings, "PGQUEUE_PERIODIC", None)
        if schedules:
            from pgqueue.contrib.django.app import get_app
            from pgqueue.periodic import register_schedules

            register_schedules(get_app(), schedules)
