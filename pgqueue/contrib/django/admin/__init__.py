"""The admin pages of pgqueue: jobs, queues, periodic schedules and workers (one module each;
importing this package registers them)."""

from pgqueue.contrib.django.admin import jobs, queues, schedules, workers

__all__ = ["jobs", "queues", "schedules", "workers"]
