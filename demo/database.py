"""Where the demo's data lives: the database named by PGQUEUE_DSN (or DATABASE_URL), else a
throwaway PostgreSQL server started for the run and deleted after it.

Both demos and the demo project's settings read the database from here, so `python -m demo`,
`python -m demo.core` and `demo/manage.py` always agree on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from pgqueue.embedded import throwaway_postgres

DSN_VARIABLES = ("PGQUEUE_DSN", "DATABASE_URL")

# libpq keys that have their own entry in a Django DATABASES setting; the rest go to OPTIONS.
_DJANGO_KEYS = {"dbname": "NAME", "user": "USER", "password": "PASSWORD", "host": "HOST",
                "port": "PORT"}


@dataclass(frozen=True)
class DemoDatabase:
    dsn: str
    description: str
    ready_seconds: float


def configured_dsn() -> str | None:
    """The DSN of PGQUEUE_DSN, else DATABASE_URL, else None."""
    for variable in DSN_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    return None


@contextmanager
def database() -> Iterator[DemoDatabase]:
    """The configured database, or a throwaway server for the duration of the block. Either way
    PGQUEUE_DSN names it inside the block, so child processes (manage.py, workers) find it."""
    configured = configured_dsn()
    if configured:
        yield DemoDatabase(configured, f"the configured database {where(configured)}", 0.0)
        return
    started = time.perf_counter()
    with throwaway_postgres() as dsn:
        ready = time.perf_counter() - started
        previous = os.environ.get("PGQUEUE_DSN")
        os.environ["PGQUEUE_DSN"] = dsn
        try:
            yield DemoDatabase(dsn, f"a throwaway PostgreSQL at {where(dsn)}", ready)
        finally:
            if previous is None:
                os.environ.pop("PGQUEUE_DSN", None)
            else:
                os.environ["PGQUEUE_DSN"] = previous


def where(dsn: str) -> str:
    """host:port/dbname of a DSN, without its password (safe to print)."""
    params = conninfo_to_dict(dsn)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"


def django_database(dsn: str) -> dict[str, Any]:
    """A Django ``DATABASES`` entry for a libpq DSN (URL or key=value)."""
    params: dict[str, Any] = dict(conninfo_to_dict(dsn))
    entry: dict[str, Any] = {"ENGINE": "django.db.backends.postgresql", "OPTIONS": {}}
    for key, value in params.items():
        if key in _DJANGO_KEYS:
            entry[_DJANGO_KEYS[key]] = value
        else:
            entry["OPTIONS"][key] = value
    entry.setdefault("NAME", entry.get("USER") or os.environ.get("USER", "postgres"))
    return entry
