"""Whether a database accepts writes, so that writers refuse a read-only one up front.

A read replica (a hot standby) and a database or role with `default_transaction_read_only = on`
accept connections and reads: nothing fails until the first write, so a worker would start,
then die on registering itself with the driver's traceback, and `pgqueue healthcheck` would
say ok. The server states both facts to every client when the connection opens
(`in_hot_standby` and `default_transaction_read_only` are reported parameters since
PostgreSQL 14, the ones libpq's `target_session_attrs=read-write` relies on), so the check costs
no query and no round trip.

Where a server does not report them (PostgreSQL 13 and older, a pooler that filters them), the
check cannot tell and says nothing; the first write then fails with the driver's read-only
error, which `db.translated_errors()` turns into the same `ReadOnlyDatabase`.
"""

from __future__ import annotations

from pgqueue.db import Database, ExternalConnection
from pgqueue.errors import ReadOnlyDatabase

_REASONS = (
    ("in_hot_standby", "is a hot standby (a read replica)"),
    ("default_transaction_read_only", "has default_transaction_read_only = on"),
)


def read_only_reason(connection: ExternalConnection) -> str | None:
    """Why the database behind a psycopg connection refuses writes, or None if it does not
    (or does not say)."""
    info = connection.info
    for parameter, reason in _REASONS:
        if info.parameter_status(parameter) == "on":
            return f"the database at {info.host}:{info.port}/{info.dbname} {reason}"
    return None


def raise_if_read_only(connection: ExternalConnection) -> None:
    reason = read_only_reason(connection)
    if reason is not None:
        raise ReadOnlyDatabase(f"read-only: {reason}; point the DSN at the primary")


def require_writable(database: Database) -> None:
    """Raise `ReadOnlyDatabase` if the database refuses writes (see the module docstring)."""
    with database.connection() as connection:
        raise_if_read_only(connection)
