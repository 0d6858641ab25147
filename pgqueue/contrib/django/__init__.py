"""pgqueue for Django: add ``"pgqueue.contrib.django"`` to ``INSTALLED_APPS``.

What it gives (see docs/django.md):

- ``manage.py migrate`` runs the SQL files of ``migrations_sql/`` (thin Django migrations);
- ``pgqueue.contrib.django.app.app``, a `pgqueue.App` on the Django database, whose enqueues run
  on Django's own connection and so join ``transaction.atomic()``; tasks are autodiscovered from
  every installed app's ``tasks.py``;
- ``pgqueue.contrib.django.backend.PgQueueBackend``, a backend for Django's Tasks framework;
- ``pgqueue.contrib.django.background``, a drop-in for django-background-tasks (a second app);
- ``manage.py pgqueue ...`` (the pgqueue CLI) and an admin for jobs.

Nothing outside this package imports Django.
"""
