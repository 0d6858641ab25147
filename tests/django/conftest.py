"""Django test harness: the test project in this folder, on a fresh database per test module.

Django is set up once, at import, with the project's settings; each test module then gets its
own empty database on the session's server (``pg_server``), migrated with ``manage.py migrate``
(which is itself under test), and Django's ``default`` alias is pointed at it. Subprocesses
(``manage.py ...``) find the same database through PGQUEUE_TEST_DJANGO_DATABASE.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from djtesting import DjangoDatabase

HERE = Path(__file__).resolve().parent


def _missing_requirement() -> str | None:
    if importlib.util.find_spec("django") is None:
        return "Django is not installed"
    import django

    if django.VERSION < (6, 0) and importlib.util.find_spec("django_tasks") is None:
        return "Django 5.2 needs the django-tasks backport"
    return None


MISSING = _missing_requirement()
if MISSING is not None:
    # The Django suite needs the django extra; scripts/test-django-matrix.sh installs it and runs
    # this folder on Django 5.2 and 6. Elsewhere, say why it is left out instead of erroring.
    collect_ignore_glob = ["test_*.py"]
    warnings.warn(f"tests/django not collected: {MISSING} "
                  "(pip install -e '.[django]', or run scripts/test-django-matrix.sh)",
                  stacklevel=1)
else:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "djproject.settings"
    import django
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()

_TOKEN = f"{os.getpid()}_{secrets.token_hex(3)}"
_counter = iter(range(1, 1_000_000))


def _unique_name() -> str:
    return f"pgq_dj_{_TOKEN}_{next(_counter)}"


def point_django_at(settings: dict[str, Any]) -> None:
    """Make Django's ``default`` alias use `settings` (closing the old connection)."""
    from django.db import connections
    from djtesting import ENV_VAR

    connections.close_all()
    connection = connections["default"]
    for key, value in settings.items():
        connection.settings_dict[key] = value
    os.environ[ENV_VAR] = json.dumps(settings)


@pytest.fixture(scope="module")
def fresh_database(pg_server: Any) -> Callable[[], Any]:
    """A factory of empty databases, all dropped at the end of the module."""
    from contextlib import ExitStack

    from django.db import connections
    from djtesting import DjangoDatabase

    stack = ExitStack()

    def create() -> DjangoDatabase:
        name = _unique_name()
        stack.enter_context(pg_server.janitor(name, template="template0"))
        settings = {"NAME": name, "HOST": pg_server.host, "PORT": pg_server.port,
                    "USER": pg_server.user, "PASSWORD": pg_server.password or ""}
        return DjangoDatabase(name=name, settings=settings, dsn=pg_server.dsn_for(name))

    with stack:
        yield create
        connections.close_all()
        from pgqueue.contrib.django.app import app

        app.close()


@pytest.fixture(scope="module")
def django_db(fresh_database: Callable[[], DjangoDatabase]) -> Iterator[DjangoDatabase]:
    """This module's database: fresh, migrated with ``manage.py migrate``, Django pointed at it."""
    from django.core.management import call_command
    from django.db import connections

    database = fresh_database()
    point_django_at(database.settings)
    call_command("migrate", verbosity=0, interactive=False)
    yield database
    connections.close_all()


@pytest.fixture
def clean_jobs(django_db: DjangoDatabase) -> Iterator[DjangoDatabase]:
    """Start the test with no jobs and no workers."""
    from django.db import connections

    with connections["default"].cursor() as cursor:
        cursor.execute("DELETE FROM pgqueue.jobs; DELETE FROM pgqueue.workers")
    yield django_db


@pytest.fixture
def client(clean_jobs: DjangoDatabase) -> Any:
    """Django's test client, logged in as a superuser (the admin's tests)."""
    from django.contrib.auth.models import User
    from django.test import Client

    admin, _ = User.objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(admin)
    return client
