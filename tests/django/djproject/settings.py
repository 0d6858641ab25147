"""Settings of the test project. The database comes from PGQUEUE_TEST_DJANGO_DATABASE (JSON with
NAME, HOST, PORT, USER, PASSWORD), which the test fixtures set to a fresh database per module."""

import json
import os

import django

SECRET_KEY = "pgqueue-tests-only"
DEBUG = os.environ.get("PGQUEUE_TEST_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *(["django_tasks"] if django.VERSION < (6, 0) else []),
    "pgqueue.contrib.django",
    "pgqueue.contrib.django.background",
    "shop",
    "newsletter",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "djproject.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_database = json.loads(os.environ.get("PGQUEUE_TEST_DJANGO_DATABASE") or "{}")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _database.get("NAME", "pgqueue_django_dev"),
        "HOST": _database.get("HOST", "127.0.0.1"),
        "PORT": _database.get("PORT", 5432),
        "USER": _database.get("USER", "postgres"),
        "PASSWORD": _database.get("PASSWORD") or "",
    },
}

TASKS = {
    "default": {
        "BACKEND": "pgqueue.contrib.django.backend.PgQueueBackend",
        "QUEUES": ["default", "emails"],
    },
}

# django-background-tasks settings, kept small so retry tests finish quickly.
MAX_ATTEMPTS = int(os.environ.get("PGQUEUE_TEST_MAX_ATTEMPTS", "25"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"pgqueue": {"handlers": ["console"], "level": "WARNING"}},
}

# Mail stays in memory, also in manage.py subprocesses (MAILERS replaces EMAIL_BACKEND in 6.1).
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
