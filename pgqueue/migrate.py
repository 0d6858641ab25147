"""Applies the plain-SQL files of migrations_sql/ in order, once each, one migrator at a time.

The files are the schema's only definition: `pgqueue migrate --sql` prints them for DBAs who
apply them by hand, and the Django migrations run the very same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pgqueue import db, store
from pgqueue.errors import MigrationInProgress, SchemaMissing
from pgqueue.readonly import raise_if_read_only


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str


def _migrations_dir() -> Path:
    """Inside an installed wheel the files ship as pgqueue/migrations_sql; in a checkout they
    live at the repository root."""
    packaged = resources.files("pgqueue").joinpath("migrations_sql")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "migrations_sql"


def migration_files() -> list[Migration]:
    directory = _migrations_dir()
    files = sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    if not files:
        raise SchemaMissing(f"no migration files found in {directory}")
    return [Migration(path.stem, path.read_text(encoding="utf-8")) for path in files]


def full_sql() -> str:
    """Every migration as one script (each file records itself), for `psql -1 -f`."""
    return "\n".join(f"-- {m.name}\n{m.sql.rstrip()}\n" for m in migration_files())


def pending_migrations(connection: db.ExternalConnection) -> list[Migration]:
    applied: set[str] = set()
    if db.run_on(connection, store.schema_exists()):
        applied = set(db.run_on(connection, store.applied_migrations()))
    return [m for m in migration_files() if m.name not in applied]


def apply_migrations(conninfo: str) -> list[str]:
    """Apply pending migrations in one transaction; returns the names applied (none: current).

    A read replica with nothing pending is simply current; with something pending, it is
    refused with `ReadOnlyDatabase` before any statement fails half-way.
    """
    with db.connect(conninfo, autocommit=False) as conn:
        with db.translated_errors(), conn.transaction():
            if not db.run_on(conn, store.lock_migrations()):
                raise MigrationInProgress()
            pending = pending_migrations(conn)
            if pending:
                raise_if_read_only(conn)
            for migration in pending:
                conn.execute(migration.sql.encode())
        return [migration.name for migration in pending]
