"""The Django settings pgqueue reads, each with its default, in one place."""

from __future__ import annotations

from django.conf import settings

DEFAULT_DATABASE_ALIAS = "default"


def database_alias() -> str:
    """``PGQUEUE_DATABASE_ALIAS``: the ``DATABASES`` entry holding the pgqueue schema."""
    return getattr(settings, "PGQUEUE_DATABASE_ALIAS", DEFAULT_DATABASE_ALIAS)


def pool_size() -> int:
    """``PGQUEUE_POOL_SIZE``: connections in each of the worker's pools (default 10)."""
    return int(getattr(settings, "PGQUEUE_POOL_SIZE", 10))


def result_max_bytes(default: int | None) -> int | None:
    """``PGQUEUE_RESULT_MAX_BYTES``: the largest task return value kept, in bytes of JSON
    (None: no cap); default 1 MiB, as for `pgqueue.App`."""
    return getattr(settings, "PGQUEUE_RESULT_MAX_BYTES", default)
