"""``manage.py pgqueue ...`` (the pgqueue CLI's flags, on the project's database), and the
migration guide's SQL for tasks left in django-background-tasks' own table."""

from __future__ import annotations

import io
import json
import re
import signal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from djtesting import manage, spawn_manage, wait_until

from pgqueue import cli
from pgqueue.contrib.django.background.models import Task
from pgqueue.contrib.django.models import Job

DOCS = Path(__file__).resolve().parents[2] / "docs" / "django.md"


def pgqueue_command(*args: str) -> str:
    out = io.StringIO()
    call_command("pgqueue", *args, stdout=out)
    return out.getvalue()


def _subcommands(parser) -> dict[str, object]:
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_flags_are_exactly_the_clis() -> None:
    from pgqueue.contrib.django.management.commands.pgqueue import Command

    django_parser = Command().create_parser("manage.py", "pgqueue")
    cli_parser = cli.build_parser()
    django_commands, cli_commands = _subcommands(django_parser), _subcommands(cli_parser)
    assert django_commands.keys() == cli_commands.keys()
    for name, sub in cli_commands.items():
        flags = sorted(option for action in sub._actions for option in action.option_strings)
        assert sorted(option for action in django_commands[name]._actions
                      for option in action.option_strings) == flags, name


def test_defer_jobs_stats_retry_cancel_healthcheck(clean_jobs) -> None:
    out = pgqueue_command("defer", "shop.tasks.email_order", '["Z-1"]', "--delay", "60")
    job_id = int(re.search(r"deferred job (\d+)", out).group(1))
    job = Job.objects.get(pk=job_id)
    assert (job.task_name, job.args, job.queue) == ("shop.tasks.email_order", ["Z-1"], "emails")
    assert str(job_id) in pgqueue_command("jobs", "--state", "queued")
    stats = json.loads(pgqueue_command("stats", "--json"))
    assert [(row["queue"], row["queued"]) for row in stats] == [("emails", 1)]
    assert "cancelled" in pgqueue_command("cancel", str(job_id))
    assert "queued again" in pgqueue_command("retry", str(job_id))
    assert "ok" in pgqueue_command("healthcheck")


def test_failures_raise_with_the_clis_exit_codes(clean_jobs) -> None:
    with pytest.raises(CommandError) as failure:
        pgqueue_command("retry", "999999")
    assert failure.value.returncode == cli.EXIT_NOT_FOUND
    with pytest.raises(CommandError) as failure:
        pgqueue_command("defer", "no.such.task")
    assert failure.value.returncode == cli.EXIT_USAGE


def test_worker_subcommand_runs_jobs_in_a_subprocess(clean_jobs) -> None:
    from shop.tasks import email_order

    job_id = email_order.defer("Y-1")
    result = manage(clean_jobs, "pgqueue", "worker", "--one-shot", "--queues", "emails")
    assert result.returncode == 0, result.stderr
    assert Job.objects.get(pk=job_id).state == "succeeded"


def test_process_pool_children_load_django_before_the_tasks(clean_jobs) -> None:
    from shop.tasks import email_order

    job_id = email_order.defer("P-1")
    result = manage(clean_jobs, "pgqueue", "worker", "--one-shot", "--queues", "emails",
                    "--pool", "process", "-c", "1")
    assert result.returncode == 0, result.stderr
    job = Job.objects.get(pk=job_id)
    assert job.state == "succeeded", job.error_message


def test_healthcheck_exit_code_without_schema(fresh_database) -> None:
    database = fresh_database()
    result = manage(database, "pgqueue", "healthcheck")
    assert result.returncode == cli.EXIT_SCHEMA_MISSING, result.stderr
    assert "schema" in result.stderr


def _guide_sql() -> str:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"```sql\n(\s*INSERT INTO pgqueue_background_task.*?)```", text, re.S)
    assert match, "the migration guide's SQL block is missing from docs/django.md"
    return match.group(1)


def test_migration_guide_moves_pending_tasks_from_the_old_table(clean_jobs) -> None:
    with connection.cursor() as cursor:
        # django-background-tasks' table, with the columns its migrations create.
        cursor.execute("""
            CREATE TABLE background_task (
                id serial PRIMARY KEY, task_name varchar(190) NOT NULL,
                task_params text NOT NULL, task_hash varchar(40) NOT NULL,
                verbose_name varchar(255), priority integer NOT NULL,
                run_at timestamptz NOT NULL, repeat bigint NOT NULL,
                repeat_until timestamptz, queue varchar(190), attempts integer NOT NULL,
                failed_at timestamptz, last_error text NOT NULL, locked_by varchar(64),
                locked_at timestamptz, creator_object_id integer,
                creator_content_type_id integer)""")
        cursor.execute("""
            INSERT INTO background_task (task_name, task_params, task_hash, verbose_name,
                priority, run_at, repeat, queue, attempts, failed_at, last_error)
            VALUES ('newsletter.tasks.notify_user', '[[7], {}]', 'abc', 'Notify 7', 3,
                    now() + interval '1 hour', 3600, NULL, 0, NULL, ''),
                   ('newsletter.tasks.recalculate_data', '[[], {}]', 'def', NULL, 0,
                    now(), 0, 'reports', 2, now(), 'boom')""")
        cursor.execute(_guide_sql())
        cursor.execute("DROP TABLE background_task")
    moved = Task.objects.get()
    assert (moved.task_name, moved.params(), moved.verbose_name, moved.priority,
            moved.repeat, moved.queue, moved.max_attempts) == (
        "newsletter.tasks.notify_user", ([7], {}), "Notify 7", 3, 3600, "default", 25)


@pytest.mark.parametrize("command", [
    ("pgqueue", "worker", "--shutdown-timeout", "600"),
    ("process_tasks",),
], ids=["pgqueue worker", "process_tasks"])
def test_a_stopped_worker_releases_a_job_its_sync_task_will_not_leave_and_exits(
    clean_jobs, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """The released job is back in `queued` for another worker: the process must not live on
    with the task still running it (the second signal, or the shutdown timeout, ends it)."""
    from shop.models import Order
    from shop.tasks import sleeps_ignoring_abort

    reference = f"sleeping in {command[0]}"
    Order.objects.create(reference=reference)
    job_id = sleeps_ignoring_abort.defer(reference, 600)
    log = tmp_path / "worker.log"
    worker = spawn_manage(clean_jobs, *command, log=log)
    wait_until(lambda: Order.objects.get(reference=reference).emailed, timeout=30,
               message="the task to start")
    worker.send_signal(signal.SIGTERM)
    worker.send_signal(signal.SIGINT)  # at once, as an impatient operator does
    worker.wait(timeout=20)
    assert "worker.exit_forced" in log.read_text(), log.read_text()
    job = Job.objects.get(pk=job_id)
    assert (job.state, job.attempts) == ("queued", 0)
