"""The real `pgqueue` command in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psycopg
import pytest

from tests.helpers import run_cli, scalar, spawn_cli, wait_until

APP = "tests.apps.core_app:app"


def _deferred_id(output: str) -> int:
    assert output.startswith("deferred job "), output
    return int(output.split()[-1])


def test_migrate_twice_then_healthcheck(empty_dsn: str) -> None:
    first = run_cli("migrate", dsn=empty_dsn)
    assert first.returncode == 0 and first.stdout.startswith("applied: 0001_initial")
    second = run_cli("migrate", dsn=empty_dsn)
    assert (second.returncode, second.stdout.strip()) == (0, "schema is up to date")
    health = run_cli("healthcheck", dsn=empty_dsn)
    assert health.returncode == 0, health.stderr


def test_migrate_sql_prints_a_script_psql_can_apply(empty_dsn: str) -> None:
    printed = run_cli("migrate", "--sql", dsn=None)
    assert printed.returncode == 0 and "CREATE TABLE pgqueue.jobs" in printed.stdout
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(printed.stdout.encode())
    assert run_cli("healthcheck", dsn=empty_dsn).returncode == 0
    assert run_cli("migrate", dsn=empty_dsn).stdout.strip() == "schema is up to date"


def test_defer_worker_jobs_stats_round_trip(ledger_dsn: str) -> None:
    deferred = run_cli("--app", APP, "defer", "tests.apps.core_app.add", '{"a": 2, "b": 3}',
                       "--queue", "math", "--priority", "4", dsn=ledger_dsn)
    assert deferred.returncode == 0, deferred.stderr
    job_id = _deferred_id(deferred.stdout.strip())
    positional = run_cli("--app", "tests.apps.core_app.app", "defer", "tests.apps.core_app.add",
                         "[1, 1]", "--delay", "3600", dsn=ledger_dsn)
    assert positional.returncode == 0, positional.stderr

    worker = run_cli("--app", APP, "worker", "--one-shot", "-q", "math", "-c", "2", "-n", "w1",
                     dsn=ledger_dsn)
    assert worker.returncode == 0, worker.stderr
    assert "job.succeeded" in worker.stderr and f"job_id={job_id}" in worker.stderr
    assert scalar(ledger_dsn, "SELECT result FROM pgqueue.jobs WHERE id = %s", (job_id,)) == 5

    listed = run_cli("jobs", "--state", "succeeded", dsn=ledger_dsn)
    assert listed.returncode == 0
    assert str(job_id) in listed.stdout and "tests.apps.core_app.add" in listed.stdout
    stats = run_cli("stats", "--json", dsn=ledger_dsn)
    by_queue = {row["queue"]: row for row in json.loads(stats.stdout)}
    assert by_queue["math"]["succeeded"] == 1 and by_queue["default"]["queued"] == 1
    plain = run_cli("stats", dsn=ledger_dsn)
    assert plain.stdout.splitlines()[0].split()[:3] == ["queue", "queued", "running"]


def test_retry_and_cancel_commands(ledger_dsn: str) -> None:
    job_id = _deferred_id(run_cli("--app", APP, "defer", "tests.apps.core_app.noop",
                                  dsn=ledger_dsn).stdout.strip())
    cancelled = run_cli("cancel", str(job_id), dsn=ledger_dsn)
    assert (cancelled.returncode, cancelled.stdout.strip()) == (0, f"job {job_id} cancelled")
    again = run_cli("cancel", str(job_id), dsn=ledger_dsn)
    assert again.returncode == 8 and "already cancelled" in again.stderr
    retried = run_cli("retry", str(job_id), dsn=ledger_dsn)
    assert retried.returncode == 0
    assert scalar(ledger_dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                  (job_id,)) == "queued"
    assert run_cli("retry", str(job_id), dsn=ledger_dsn).returncode == 8
    missing = run_cli("cancel", "999999", dsn=ledger_dsn)
    assert missing.returncode == 6 and "no job with id 999999" in missing.stderr


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--app", "no_such_module:app", "worker"), 5, "cannot import --app module"),
    (("--app", "tests.apps.core_app:missing", "worker"), 5, "has no attribute 'missing'"),
    (("--app", "tests.apps.core_app:LEDGER_DDL", "worker"), 5, "is a str, not a pgqueue.App"),
    (("--app", "nocolon", "worker"), 5, "--app must look like module:attr"),
    (("--app", APP, "defer", "unknown.task"), 2, "UnknownTask"),
    (("--app", APP, "defer", "tests.apps.core_app.add", "{not json"), 2, "not valid JSON"),
    (("--app", APP, "defer", "tests.apps.core_app.add", "[1]"), 2, "InvalidArguments"),
    (("--app", APP, "defer", "tests.apps.core_app.add", "[1, 2]", "--priority", "99999"), 2,
     "InvalidPriority"),
])
def test_bad_usage_gets_one_line_and_a_named_exit_code(
    ledger_dsn: str, args: tuple[str, ...], code: int, message: str
) -> None:
    result = run_cli(*args, dsn=ledger_dsn)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unreachable_database_and_missing_schema(empty_dsn: str) -> None:
    unreachable = run_cli("--dsn", "postgresql://127.0.0.1:1/nowhere?connect_timeout=2",
                          "healthcheck", dsn=None)
    assert unreachable.returncode == 3 and "database unavailable" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1
    for command in (("healthcheck",), ("--app", APP, "worker", "--one-shot"), ("jobs",)):
        missing = run_cli(*command, dsn=empty_dsn)
        assert missing.returncode == 4, (command, missing.stderr)
        assert "pgqueue migrate" in missing.stderr
    no_dsn = run_cli("jobs", dsn=None, PGQUEUE_DSN="", DATABASE_URL="")
    assert no_dsn.returncode == 2 and "no database configured" in no_dsn.stderr


def test_app_from_environment_variable(ledger_dsn: str) -> None:
    result = run_cli("defer", "tests.apps.core_app.noop", dsn=ledger_dsn, PGQUEUE_APP=APP)
    assert result.returncode == 0, result.stderr


def test_sigterm_lets_running_jobs_finish_and_claims_nothing_new(ledger_dsn: str) -> None:
    run_cli("--app", APP, "defer", "tests.apps.core_app.sleep_for", "[1.0]", dsn=ledger_dsn)
    worker = spawn_cli("--app", APP, "worker", "-c", "1", dsn=ledger_dsn)
    wait_until(lambda: scalar(ledger_dsn, "SELECT count(*) FROM ledger"), timeout=15,
               message="job start")
    later = _deferred_id(run_cli("--app", APP, "defer", "tests.apps.core_app.noop",
                                 dsn=ledger_dsn).stdout.strip())
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert scalar(ledger_dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = 1") == "succeeded"
    assert scalar(ledger_dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s",
                  (later,)) == "queued"
    assert scalar(ledger_dsn, "SELECT count(*) FROM pgqueue.workers") == 0


def test_shutdown_timeout_puts_the_job_back_without_spending_an_attempt(
    ledger_dsn: str
) -> None:
    run_cli("--app", APP, "defer", "tests.apps.core_app.async_sleep_for", "[60]", dsn=ledger_dsn)
    worker = spawn_cli("--app", APP, "worker", "--shutdown-timeout", "0.5", dsn=ledger_dsn)
    wait_until(lambda: scalar(ledger_dsn, "SELECT count(*) FROM ledger"), timeout=15,
               message="job start")
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert time.monotonic() - started < 10
    row = scalar(ledger_dsn, "SELECT row(state, attempts, worker_id IS NULL)::text "
                             "FROM pgqueue.jobs WHERE id = 1")
    assert row == "(queued,0,t)"


def test_second_signal_exits_at_once_and_still_releases_jobs(
    ledger_dsn: str, tmp_path: Path
) -> None:
    run_cli("--app", APP, "defer", "tests.apps.core_app.sleep_for", "[60]", dsn=ledger_dsn)
    log = tmp_path / "worker.log"
    worker = spawn_cli("--app", APP, "worker", "--shutdown-timeout", "120", dsn=ledger_dsn,
                       log=log)
    wait_until(lambda: scalar(ledger_dsn, "SELECT count(*) FROM ledger"), timeout=15,
               message="job start")
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: "worker.stopping" in log.read_text(), timeout=10,
               message="the first signal to be handled")
    started = time.monotonic()
    worker.send_signal(signal.SIGINT)
    worker.wait(timeout=30)
    output = log.read_text()
    assert time.monotonic() - started < 10, output
    assert worker.returncode == 0, output
    assert scalar(ledger_dsn, "SELECT row(state, attempts)::text FROM pgqueue.jobs "
                              "WHERE id = 1") == "(queued,0)"


ECHO = "tests.apps.core_app.async_echo"


@pytest.mark.parametrize(("args", "message"), [
    ((ECHO, "[" * 101 + "]" * 101), "nested more than 100 levels deep"),
    ((ECHO, "[" * 30_000 + "]" * 30_000), "nested too deep to parse (arguments may nest 100"),
    ((ECHO, "[" + "7" * 5000 + "]"), "not valid JSON: Exceeds the limit (4300 digits)"),
    ((ECHO, "[NaN]"), "NaN or an infinity"),
    ((ECHO, "[1e999]"), "NaN or an infinity"),
    ((ECHO, "[1]", "--run-at", "0001-01-01T12:00:00+00:00"), "run_at must be between"),
    ((ECHO, "[1]", "--delay", "1e12"), "runs past 9999-12-30"),
    ((ECHO, "[1]", "--queue", "q\x1b[2J"), "InvalidName"),
])
def test_defer_refuses_what_no_worker_could_run_in_one_line_with_exit_2(
    ledger_dsn: str, args: tuple[str, ...], message: str
) -> None:
    """Nesting ~500 deep printed a RecursionError traceback and exited 1."""
    result = run_cli("--app", APP, "defer", *args, dsn=ledger_dsn)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert scalar(ledger_dsn, "SELECT count(*) FROM pgqueue.jobs") == 0


def test_stats_jobs_and_top_escape_what_producers_wrote(ledger_dsn: str) -> None:
    """A queue name and an error message holding escape sequences, written by SQL, are shown
    escaped: before, `stats` and `jobs` cleared the screen and retitled the terminal."""
    hostile = "\x1b[2J\x1b]0;owned\x07"
    with psycopg.connect(ledger_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task_name, queue, state, finished_at, "
                     "started_at, error_type, error_message) VALUES (%s, %s, 'failed', now(), "
                     "now(), 'Boom', %s)", ("t" + hostile, "q" + hostile, "m" + hostile))
    shown = "\\x1b[2J\\x1b]0;owned\\x07"
    for command in (("stats",), ("jobs",), ("top", "--once")):
        result = run_cli(*command, dsn=ledger_dsn)
        assert result.returncode == 0, result.stderr
        assert not set("\x1b\x07") & set(result.stdout), (command, result.stdout)
        assert "q" + shown in result.stdout, (command, result.stdout)
    assert "t" + shown in run_cli("jobs", dsn=ledger_dsn).stdout
    assert "m" + shown in run_cli("top", "--once", dsn=ledger_dsn).stdout
