"""``manage.py migrate`` runs the very same SQL files as ``pgqueue migrate``, in either order."""

from __future__ import annotations

import subprocess
import sys

import psycopg
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import CreateModel
from django.test import override_settings
from djtesting import manage

from pgqueue.contrib.django.checks import pgqueue_schema_check, pgqueue_settings_check
from pgqueue.contrib.django.operations import RunSqlFile
from pgqueue.migrate import apply_migrations, migration_files


def _recorded(dsn: str) -> list[tuple[str, object]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT name, applied_at FROM pgqueue.migrations ORDER BY name"
                            ).fetchall()


def _django_recorded(dsn: str, app: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(
            "SELECT name FROM django_migrations WHERE app = %s ORDER BY id", (app,))]


def test_django_migrations_match_the_sql_files_one_to_one() -> None:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    names = sorted(name for app, name in loader.disk_migrations if app == "pgqueue")
    files = migration_files()
    assert len(names) == len(files), (
        f"one Django migration per SQL file: {names} vs {[f.name for f in files]}")
    for name, sql_file in zip(names, files, strict=True):
        migration = loader.disk_migrations[("pgqueue", name)]
        assert name == sql_file.name
        runs = [op for op in migration.operations if isinstance(op, RunSqlFile)]
        assert len(runs) == 1, f"{name} must run exactly one SQL file"
        assert runs[0].file_name == sql_file.name
        assert runs[0].sql == [sql_file.sql]
        # Anything else in it only declares the state of unmanaged models (Job).
        others = [op for op in migration.operations if op is not runs[0]]
        assert all(isinstance(op, CreateModel) and op.options.get("managed") is False
                   for op in others), others


def test_sqlmigrate_prints_the_sql_file(fresh_database) -> None:
    database = fresh_database()
    result = manage(database, "sqlmigrate", "pgqueue", "0001_initial")
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE pgqueue.jobs" in result.stdout
    assert "INSERT INTO pgqueue.migrations (name) VALUES ('0001_initial');" in result.stdout


def test_manage_migrate_then_pgqueue_migrate_is_a_no_op(fresh_database) -> None:
    database = fresh_database()
    result = manage(database, "migrate", "--no-input")
    assert result.returncode == 0, result.stderr
    recorded = _recorded(database.dsn)
    assert [name for name, _ in recorded] == [m.name for m in migration_files()]

    assert apply_migrations(database.dsn) == []
    cli = subprocess.run([sys.executable, "-m", "pgqueue", "--dsn", database.dsn, "migrate"],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "schema is up to date" in cli.stdout
    assert _recorded(database.dsn) == recorded


def test_pgqueue_migrate_then_manage_migrate_is_a_no_op(fresh_database) -> None:
    database = fresh_database()
    applied = apply_migrations(database.dsn)
    assert applied == [m.name for m in migration_files()]
    recorded = _recorded(database.dsn)

    result = manage(database, "migrate", "--no-input")
    assert result.returncode == 0, result.stderr
    assert _recorded(database.dsn) == recorded  # nothing ran twice (it would have failed)
    assert _django_recorded(database.dsn, "pgqueue") == [m.name for m in migration_files()]
    again = manage(database, "migrate", "--no-input")
    assert again.returncode == 0 and "No migrations to apply" in again.stdout


def test_schema_check_warns_until_migrated(fresh_database) -> None:
    database = fresh_database()
    result = manage(database, "check", "--database", "default")
    assert result.returncode == 0, result.stderr
    assert "pgqueue.W001" in result.stderr
    assert manage(database, "migrate", "--no-input").returncode == 0
    result = manage(database, "check", "--database", "default")
    assert result.returncode == 0
    assert "pgqueue.W001" not in result.stderr + result.stdout


def test_schema_check_is_skipped_without_database_flag() -> None:
    assert list(pgqueue_schema_check(databases=None)) == []


@override_settings(PGQUEUE_DATABASE_ALIAS="nope")
def test_unknown_database_alias_is_a_system_check_error() -> None:
    errors = list(pgqueue_settings_check())
    assert [error.id for error in errors] == ["pgqueue.E001"]
    assert "'nope'" in errors[0].msg


def test_models_and_migrations_agree(fresh_database) -> None:
    """The unmanaged models' state (Job, Queue, Schedule, Worker, the drop-in's Task and
    CompletedTask) is declared in the migrations: makemigrations has nothing to write."""
    result = manage(fresh_database(), "makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
