"""pgqueue on Django's database: the DSN built from a ``DATABASES`` entry, calls run on Django's
own connection (so an enqueue joins ``transaction.atomic()``), and the per-task hook that keeps
worker threads from holding stale Django connections.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import Error as DjangoDatabaseError
from django.db import close_old_connections, connections
from django.db import transaction as django_transaction
from django.utils.connection import ConnectionDoesNotExist

from pgqueue.db import (
    Call,
    Copy,
    Database,
    ExternalConnection,
    Pooler,
    copy_with,
    translated_errors,
)
from pgqueue.errors import ConfigurationError, PgQueueError

T = TypeVar("T")

# Django-only keys of DATABASES[...]["OPTIONS"]; every other key is a libpq parameter.
_DJANGO_ONLY_OPTIONS = frozenset({
    "assume_role", "context", "cursor_factory", "isolation_level", "pool",
    "prepare_threshold", "server_side_binding",
})
_SETTINGS_TO_LIBPQ = (("NAME", "dbname"), ("USER", "user"), ("PASSWORD", "password"),
                      ("HOST", "host"), ("PORT", "port"))
# Django registers a loader that hands json/jsonb back as text (its JSONField decodes itself).
_JSON_TYPE_OIDS = frozenset({114, 3802})


def _quote(value: Any) -> str:
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo_from_settings(settings_dict: Mapping[str, Any]) -> str:
    """A libpq conninfo string for one ``DATABASES`` entry (``NAME``, ``USER``, ``PASSWORD``,
    ``HOST``, ``PORT`` and the libpq keys of ``OPTIONS``, such as ``sslmode`` or ``service``)."""
    engine = settings_dict.get("ENGINE", "")
    if "postgresql" not in engine and "postgis" not in engine:
        raise ConfigurationError(f"pgqueue needs a PostgreSQL database, not ENGINE={engine!r}")
    params: dict[str, Any] = {}
    for setting, key in _SETTINGS_TO_LIBPQ:
        if settings_dict.get(setting):
            params[key] = settings_dict[setting]
    for key, value in (settings_dict.get("OPTIONS") or {}).items():
        if key not in _DJANGO_ONLY_OPTIONS and value is not None:
            params[key] = value
    return " ".join(f"{key}={_quote(value)}" for key, value in params.items())


def dsn_from_settings(alias: str) -> str:
    """The conninfo of ``DATABASES[alias]`` as Django uses it now (during tests, the test
    database)."""
    try:
        settings_dict = connections[alias].settings_dict
    except ConnectionDoesNotExist as exc:
        raise ConfigurationError(
            f"PGQUEUE_DATABASE_ALIAS is {alias!r}, which is not in DATABASES") from exc
    return conninfo_from_settings(settings_dict)


def _decoded(value: Any, is_json: bool) -> Any:
    return json.loads(value) if is_json and isinstance(value, str) else value


def _translate(exc: DjangoDatabaseError) -> None:
    """Raise the pgqueue error for a driver error Django wrapped, if there is one."""
    cause = exc.__cause__
    if cause is None:
        return
    try:
        with translated_errors():
            raise cause
    except PgQueueError as translated:
        raise translated from exc
    except BaseException:
        return


def run_on_django(call: Call[T], alias: str) -> T:
    """Run a call on Django's connection for `alias`, inside whatever transaction is open there."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(call.sql, call.params)
            if cursor.description is None:
                return call.decode([])
            columns = [(column.name, column.type_code in _JSON_TYPE_OIDS)
                       for column in cursor.description]
            rows = [[_decoded(value, is_json) for (_name, is_json), value
                     in zip(columns, row, strict=True)] for row in cursor.fetchall()]
            if not call.tuples:
                rows = [dict(zip((name for name, _ in columns), row, strict=True))
                        for row in rows]
    except DjangoDatabaseError as exc:
        _translate(exc)
        raise
    return call.decode(rows)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class DjangoDatabase(Database):
    """pgqueue's pools for the worker; but a sync call given no connection runs on Django's
    connection, so ``task.defer()`` inside ``atomic()`` commits or rolls back with the ORM.

    From a thread running an event loop (where Django forbids sync queries) calls use the pool.
    """

    def __init__(self, conninfo: str, *, alias: str, max_size: int = 10,
                 pooler: Pooler = "none") -> None:
        super().__init__(conninfo, max_size=max_size, pooler=pooler)
        self.alias = alias

    def run(self, call: Call[T], connection: ExternalConnection | None = None) -> T:
        if connection is not None or _in_event_loop():
            return super().run(call, connection)
        return run_on_django(call, self.alias)

    @contextmanager
    def transaction(self) -> Iterator[ExternalConnection | None]:
        """`atomic()` on Django's connection (a savepoint inside the caller's): the calls run
        on it with `connection=None`, and commit or roll back with the ORM's work."""
        if _in_event_loop():
            with super().transaction() as conn:
                yield conn
            return
        with django_transaction.atomic(using=self.alias):
            yield None

    def copy(self, copy: Copy, connection: ExternalConnection | None = None) -> None:
        if connection is not None or _in_event_loop():
            return super().copy(copy, connection)
        try:
            with connections[self.alias].cursor() as cursor:
                copy_with(cursor.cursor, copy)  # the psycopg cursor inside Django's wrapper
        except DjangoDatabaseError as exc:
            _translate(exc)
            raise
        return None


@contextmanager
def close_stale_connections() -> Iterator[None]:
    """Around each sync task in a worker thread: drop Django connections that are broken or
    past ``CONN_MAX_AGE``, as Django does around each request."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()
