"""Django test harness: the test project in this folder, on a fresh database per test module.

Django is set up once, at import, with the project's settings; each test module then gets its
own empty database on the session's server (``pg_server``), migrated with ``manage.py migrate``
(which is itself under test), and Django's ``default`` alias is pointed at it. Subprocesses
(``manage.py ...``) find the same database through PGQUEUE_TEST_DJANGO_DATABASE.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
os.environ["DJANGO_SETTINGS_MODULE"] = "djproject.settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

setup_test_environment()

from djtesting import ENV_VAR, DjangoDatabase  # noqa: E402

_TOKEN = f"{os.getpid()}_{secrets.token_hex(3)}"
_counter = iter(range(1, 1_000_000))


def _unique_name() -> str:
    return f"pgq_dj_{_TOKEN}_{next(_counter)}"


def point_django_at(settings: dict[str, Any]) -> None:
    """Make Django's ``default`` alias use `settings` (closing the old connection)."""
    connections.close_all()
    connection = connections["default"]
    for key, value in settings.items():
        connection.settings_dict[key] = value
    os.environ[ENV_VAR] = json.dumps(settings)


@pytest.fixture(scope="module")
def fresh_database(pg_server: Any) -> Callable[[], Any]:
    """A factory of empty databases, all dropped at the end of the module."""
    from contextlib import ExitStack

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
    database = fresh_database()
    point_django_at(database.settings)
    call_command("migrate", verbosity=0, interactive=False)
    yield database
    connections.close_all()


@pytest.fixture
def clean_jobs(django_db: DjangoDatabase) -> Iterator[DjangoDatabase]:
    """Start the test with no jobs and no workers."""
    with connections["default"].cursor() as cursor:
        cursor.execute("DELETE FROM pgqueue.jobs; DELETE FROM pgqueue.workers")
    yield django_db
