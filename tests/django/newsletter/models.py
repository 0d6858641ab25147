from django.db import models


class Run(models.Model):
    """One row per task execution, so tests (and subprocess workers) can observe runs."""

    name = models.CharField(max_length=100)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
