"""System checks: the configured database alias must exist and be PostgreSQL (always checked),
and the pgqueue schema must be present and current (a database check: ``manage.py check
--database default``, and ``migrate`` runs it too, as a warning so that migrate itself can
proceed to create the schema)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.core import checks
from django.db import connections

from pgqueue.contrib.django import conf
from pgqueue.contrib.django.connection import dsn_from_settings
from pgqueue.errors import PgQueueError


def check_database_alias(alias: str, *, source: str) -> list[checks.CheckMessage]:
    try:
        dsn_from_settings(alias)
    except PgQueueError as exc:
        return [checks.Error(str(exc), hint=f"Set {source} to an alias of DATABASES that is "
                             "PostgreSQL.", id="pgqueue.E001")]
    return []


def check_schema(alias: str) -> list[checks.CheckMessage]:
    from pgqueue.migrate import pending_migrations

    try:
        with connections[alias].cursor() as cursor:
            pending = pending_migrations(cursor)
    except Exception as exc:
        return [checks.Warning(f"cannot check the pgqueue schema on database {alias!r}: {exc}",
                               id="pgqueue.W002")]
    if pending:
        names = ", ".join(migration.name for migration in pending)
        return [checks.Warning(
            f"the pgqueue schema on database {alias!r} is missing or out of date "
            f"(pending: {names})", hint="Run `python manage.py migrate pgqueue`.",
            id="pgqueue.W001")]
    return []


@checks.register()
def pgqueue_settings_check(
    app_configs: Sequence[Any] | None = None, **kwargs: Any
) -> Iterable[checks.CheckMessage]:
    return check_database_alias(conf.database_alias(), source="PGQUEUE_DATABASE_ALIAS")


@checks.register(checks.Tags.database)
def pgqueue_schema_check(
    app_configs: Sequence[Any] | None = None, databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> Iterable[checks.CheckMessage]:
    alias = conf.database_alias()
    if not databases or alias not in databases or check_database_alias(alias, source=""):
        return []
    return check_schema(alias)
