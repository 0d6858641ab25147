# ruff: noqa: RUF012
"""The views of django-background-tasks' models, faithful to the library (SQL in ../sql/): only
this door's tasks, Task.lock(), attempts and locks saved through the model, CompletedTask rows
created by Task.create_completed_task()."""

from pathlib import Path

from django.db import migrations

_SQL = Path(__file__).resolve().parent.parent / "sql"


def _views_of_0001() -> str:
    """0001's views and triggers, to restore them when this migration is reversed."""
    text = (_SQL / "0001_views.sql").read_text(encoding="utf-8")
    views = text[text.index("-- Pending and running jobs"):]
    return views.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


class Migration(migrations.Migration):
    dependencies = [("pgqueue_background", "0001_initial")]
    operations = [
        migrations.RunSQL(
            sql=[(_SQL / "0002_library_semantics.sql").read_text(encoding="utf-8")],
            reverse_sql=[
                (_SQL / "0002_library_semantics_reverse.sql").read_text(encoding="utf-8"),
                _views_of_0001()],
        ),
    ]
