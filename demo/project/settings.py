"""Settings of the demo project.

The database is the one of PGQUEUE_DSN or DATABASE_URL (`python -m demo` sets PGQUEUE_DSN when it
starts a throwaway server). pgqueue's pieces are the two apps `pgqueue.contrib.django` and
`pgqueue.contrib.django.background`, and the `TASKS` backend.
"""

from pathlib import Path

import django
from django.core.exceptions import ImproperlyConfigured

from demo.database import configured_dsn, django_database

SECRET_KEY = "pgqueue-demo-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *(["django_tasks"] if django.VERSION < (6, 0) else []),  # the Tasks backport on Django 5.2
    "pgqueue.contrib.django",               # schema, `manage.py pgqueue`, the jobs admin
    "pgqueue.contrib.django.background",    # the django-background-tasks drop-in
    "demo.newsletter",                      # pgqueue's own API: @app.task, .defer()
    "demo.reports",                         # Django's Tasks framework: @task, .enqueue()
    "demo.legacy",                          # the article's django-background-tasks code
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "demo.project.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [Path(__file__).resolve().parent / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_dsn = configured_dsn()
if not _dsn:
    raise ImproperlyConfigured(
        "the demo project needs PGQUEUE_DSN (or DATABASE_URL); `python -m demo` starts a "
        "throwaway PostgreSQL and sets it for you")
DATABASES = {"default": {
    **django_database(_dsn),
    # Worker threads keep their connection from one job to the next. pgqueue closes a thread's
    # connection around each job as Django does around each request, so with Django's default
    # (0: close every time) each of the newsletter's 1,000 jobs would open a new connection.
    "CONN_MAX_AGE": 60,
    "CONN_HEALTH_CHECKS": True,
}}

TASKS = {
    "default": {
        "BACKEND": "pgqueue.contrib.django.backend.PgQueueBackend",
        "QUEUES": ["default", "reports"],
    },
}

# Mail goes nowhere: the newsletter's deliveries are recorded as rows instead.
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
