"""The Django app ``pgqueue.contrib.django`` (label ``pgqueue``)."""

from __future__ import annotations

from django.apps import AppConfig
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
