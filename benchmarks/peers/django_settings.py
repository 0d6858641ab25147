"""Django settings shared by the two Django peers (each in its own venv).

BENCH_DSN is read with psycopg's conninfo parser; persistent connections (CONN_MAX_AGE=None)
as Django's performance docs advise. BENCH_DJANGO_APP picks the peer:
`tasks_db` (django-tasks + django-tasks-db) or `background_task` (django-background-tasks).
"""

from __future__ import annotations

import os

from psycopg.conninfo import conninfo_to_dict

_dsn = conninfo_to_dict(os.environ["BENCH_DSN"])
SECRET_KEY = "benchmark"
USE_TZ = True
DEBUG = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _dsn.get("dbname", ""),
        "HOST": _dsn.get("host", "127.0.0.1"),
        "PORT": _dsn.get("port", "5432"),
        "USER": _dsn.get("user", ""),
        "PASSWORD": _dsn.get("password", ""),
        "CONN_MAX_AGE": None,
    }
}
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "root": {"level": "WARNING"}}

if os.environ.get("BENCH_DJANGO_APP") == "background_task":
    INSTALLED_APPS = ["django.contrib.contenttypes", "background_task",
                      "benchmarks.peers.bgtasks"]
    _threads = int(os.environ.get("BENCH_CONCURRENCY", "1"))
    # Its docs: run tasks in a thread pool of this size (otherwise one at a time).
    BACKGROUND_TASK_RUN_ASYNC = _threads > 1
    BACKGROUND_TASK_ASYNC_THREADS = _threads
else:
    INSTALLED_APPS = ["django_tasks", "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
