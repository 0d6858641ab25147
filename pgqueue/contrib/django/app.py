"""The `App` of a Django project: built from the ``DATABASES`` entry named by
``PGQUEUE_DATABASE_ALIAS``, enqueueing on Django's connection, with every installed app's
``tasks.py`` registered on it.

Use it as ``from pgqueue.contrib.django.app import app`` and decorate with ``@app.task``; the
CLI can load it as ``--app pgqueue.contrib.django.app:app``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from pgqueue.app import App
from pgqueue.contrib.django import conf
from pgqueue.contrib.django.connection import (
    DjangoDatabase,
    close_stale_connections,
    dsn_from_settings,
)
from pgqueue.validation import check_result_max_bytes

if TYPE_CHECKING:
    from collections.abc import Callable

    from pgqueue.tasks import Task


class TaskRegistry(dict[str, "Task[Any, Any]"]):
    """The app's tasks; a name not registered yet is looked up once through `resolve` (Django
    Tasks are registered when first enqueued, and a worker may meet one before that)."""

    def __init__(self, resolve: Callable[[str], Task[Any, Any] | None]) -> None:
        super().__init__()
        self._resolve = resolve
        self._resolving = threading.local()

    def __missing__(self, name: str) -> Task[Any, Any]:
        resolving: set[str] = self._resolving.__dict__.setdefault("names", set())
        if name in resolving:  # registering it is what asked: it is not there yet
            raise KeyError(name)
        resolving.add(name)
        try:
            task = self._resolve(name)
        finally:
            resolving.discard(name)
        if task is None:
            raise KeyError(name)
        return task

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            return default


class DjangoApp(App):
    """An `App` whose DSN is read from Django's settings at each use (so a test database, set
    up after import, is the one used) and whose sync calls run on Django's connection."""

    def __init__(self, *, alias: str | None = None, pool_size: int | None = None,
                 **options: Any) -> None:
        super().__init__(None, **options)
        self.process_setup = "django:setup"
        """A `--pool process` child configures Django before it imports the app's tasks."""
        # Settings are read at first use, not here: the module can be imported before Django
        # is configured.
        self._alias = alias
        self._pool_size = pool_size
        self._db: DjangoDatabase | None = None
        self.tasks = TaskRegistry(self._resolve_task)
        self.task_hooks.append(close_stale_connections)

    @property
    def alias(self) -> str:
        return self._alias or conf.database_alias()

    @property
    def dsn(self) -> str:
        return self._dsn or dsn_from_settings(self.alias)

    @property
    def result_max_bytes(self) -> int | None:
        """``PGQUEUE_RESULT_MAX_BYTES`` when set, else the app's own (1 MiB)."""
        return check_result_max_bytes(conf.result_max_bytes(self._result_max_bytes))

    @property
    def db(self) -> DjangoDatabase:
        conninfo, alias = self.dsn, self.alias
        if self._db is None or (self._db.conninfo, self._db.alias) != (conninfo, alias):
            if self._db is not None:
                self._db.close()
            self.pool_size = self._pool_size or conf.pool_size()
            self._db = DjangoDatabase(conninfo, alias=alias, max_size=self.pool_size,
                                      pooler=self.pooler)
        return self._db

    def _resolve_task(self, name: str) -> Task[Any, Any] | None:
        from pgqueue.contrib.django.backend import resolve_django_task

        return resolve_django_task(self, name)


app = DjangoApp()
"""The project's pgqueue app (tasks from every installed app's ``tasks.py`` register here)."""


def get_app() -> DjangoApp:
    return app
