# ruff: noqa: RUF012
"""Runs migrations_sql/0019_per_key_claim.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0018_workflows")]
    operations = [RunSqlFile("0019_per_key_claim")]
