"""`RunSqlFile`: the Django migration operation that applies one file of ``migrations_sql/``.

The file is read through `pgqueue.migrate.migration_files()`, so ``manage.py migrate`` and
``pgqueue migrate`` run the very same SQL. Every file records itself in ``pgqueue.migrations``;
a file already recorded there (applied by ``pgqueue migrate`` or by hand with ``psql``) is
skipped, so either tool can go first.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

from pgqueue import db, store
from pgqueue.errors import ConfigurationError, MigrationInProgress
from pgqueue.migrate import migration_files


def sql_file(name: str) -> str:
    for migration in migration_files():
        if migration.name == name:
            return migration.sql
    raise ConfigurationError(f"no file {name}.sql in migrations_sql/")


def _already_applied(cursor: Any, name: str) -> bool:
    if not db.run_on(cursor, store.schema_exists()):
        return False
    return name in db.run_on(cursor, store.applied_migrations())


class RunSqlFile(migrations.RunSQL):
    """Apply ``migrations_sql/<name>.sql`` on the pgqueue database alias, unless recorded."""

    reduces_to_sql = True

    def __init__(self, name: str) -> None:
        self.file_name = name
        super().__init__(sql=[sql_file(name)], reverse_sql=None, elidable=False)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (f"{__name__}.{type(self).__qualname__}", [self.file_name], {})

    def describe(self) -> str:
        return f"Apply pgqueue SQL file {self.file_name}.sql"

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        from pgqueue.contrib.django.conf import database_alias

        connection = schema_editor.connection
        if connection.alias != database_alias():
            return
        if not schema_editor.collect_sql:
            with connection.cursor() as cursor:
                if not db.run_on(cursor, store.lock_migrations()):
                    raise MigrationInProgress()
                if _already_applied(cursor, self.file_name):
                    return
        super().database_forwards(app_label, schema_editor, from_state, to_state)
