# ruff: noqa: RUF012
"""Runs migrations_sql/0020_canvas.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0019_per_key_claim")]
    operations = [RunSqlFile("0020_canvas")]
