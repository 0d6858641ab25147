# ruff: noqa: RUF012
"""Runs migrations_sql/0007_claim_plan.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0006_door_checks")]
    operations = [RunSqlFile("0007_claim_plan")]
