"""The Django app ``pgqueue.contrib.django.background`` (label ``pgqueue_background``)."""

from __future__ import annotations

from django.apps import AppConfig


class BackgroundTaskConfig(AppConfig):
    name = "pgqueue.contrib.django.background"
    label = "pgqueue_background"
    verbose_name = "background tasks (pgqueue)"
    default_auto_field = "django.db.models.BigAutoField"
