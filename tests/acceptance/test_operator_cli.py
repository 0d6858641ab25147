"""The operator's and the newcomer's `pgqueue`, run as a real command in a subprocess: every
command against every failure class gives one line and a named exit code; a failed job's
traceback is found; JSON output; durations; logs; help; environment variables."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import pgqueue
from pgqueue import cli
from pgqueue.migrate import migration_files
from tests.helpers import REPO_ROOT, cli_command, cli_env, run_cli, scalar

APP = "tests.apps.core_app:app"
MISSING = "999999"
WORKFLOW = "5b0c6a8e-8f1e-4c36-9a52-9f4f2c1c7d10"

# Every command that touches the database, as an operator types it.
COMMANDS: dict[str, tuple[str, ...]] = {
    "worker": ("worker", "--one-shot"),
    "migrate": ("migrate",),
    "defer": ("defer", "tests.apps.core_app.add", "[1, 2]"),
    "jobs": ("jobs",),
    "job": ("job", "1"),
    "workflow": ("workflow", WORKFLOW),
    "workflow --cancel": ("workflow", WORKFLOW, "--cancel"),
    "retry": ("retry", "1"),
    "cancel": ("cancel", "1"),
    "prune": ("prune",),
    "prune --dry-run": ("prune", "--dry-run"),
    "stats": ("stats",),
    "schedules": ("schedules",),
    "schedules --pause": ("schedules", "--pause", "nightly"),
    "queue": ("queue", "emails"),
    "queue --pause": ("queue", "emails", "--pause"),
    "top": ("top", "--once"),
    "healthcheck": ("healthcheck",),
}


def _run_all(commands: dict[str, tuple[str, ...]], dsn: str | None,
             *prefix: str) -> dict[str, subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(4) as pool:
        results = pool.map(lambda argv: run_cli(*prefix, *argv, dsn=dsn, timeout=60),
                           commands.values())
        return dict(zip(commands, results, strict=True))


def _assert_one_line(name: str, result: subprocess.CompletedProcess[str], code: int,
                     says: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (name, result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("pgqueue: error: "), (name, result.stderr)
    assert says in lines[0], (name, lines[0])
    assert not re.search(r"Traceback|LINE \d|SELECT |\^", lines[0]), (name, lines[0])


def test_a_dsn_that_is_not_one(tmp_path: Path) -> None:
    """Was a 25-line traceback and exit 1."""
    for name, result in _run_all(COMMANDS, None, "--app", APP, "--dsn", "notadsn").items():
        _assert_one_line(name, result, cli.EXIT_USAGE, "not a valid DSN")


def test_a_server_that_is_down() -> None:
    down = "postgresql://127.0.0.1:1/nowhere?connect_timeout=2"
    for name, result in _run_all(COMMANDS, None, "--app", APP, "--dsn", down).items():
        _assert_one_line(name, result, cli.EXIT_DATABASE_UNAVAILABLE, "database unavailable")


def test_a_database_without_the_schema(empty_dsn: str) -> None:
    """`stats` leaked the failing statement's SQL text."""
    commands = {name: argv for name, argv in COMMANDS.items() if name != "migrate"}
    for name, result in _run_all(commands, empty_dsn, "--app", APP).items():
        _assert_one_line(name, result, cli.EXIT_SCHEMA_MISSING, "run `pgqueue migrate`")


def test_a_schema_older_than_the_code(empty_dsn: str) -> None:
    files = migration_files()
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        for migration in files[:-1]:  # the schema of the release before this one
            conn.execute(migration.sql.encode())
    commands = {name: argv for name, argv in COMMANDS.items() if name != "migrate"}
    for name, result in _run_all(commands, empty_dsn, "--app", APP).items():
        _assert_one_line(name, result, cli.EXIT_SCHEMA_MISSING,
                         f"out of date (pending: {files[-1].name})")
    upgraded = run_cli("migrate", dsn=empty_dsn)
    assert (upgraded.returncode, upgraded.stdout.strip()) == (0, f"applied: {files[-1].name}")


def test_a_read_only_database_reads_and_refuses_writes(ledger_dsn: str) -> None:
    run_cli("--app", APP, "defer", "tests.apps.core_app.add", "[1, 2]", dsn=ledger_dsn)
    name = conninfo_to_dict(ledger_dsn)["dbname"]
    with psycopg.connect(ledger_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.schedules (id, task_name, every, next_tick_at) "
                     "VALUES ('nightly', 'x', interval '1 day', now() + interval '1 day')")
        conn.execute("UPDATE pgqueue.jobs SET workflow_id = %s", (WORKFLOW,))
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    readers = {"jobs", "job", "workflow", "prune --dry-run", "stats", "schedules", "queue", "top",
               "migrate"}
    for name, result in _run_all(COMMANDS, ledger_dsn, "--app", APP).items():
        if name in readers:
            assert (result.returncode, result.stderr) == (0, ""), (name, result.stderr)
        else:
            _assert_one_line(name, result, cli.EXIT_READ_ONLY, "point the DSN at the primary")


@pytest.mark.parametrize(("reference", "says"), [
    ("os:nosuchattr", "module 'os' has no attribute 'nosuchattr'"),
    ("os:path", "is a module, not a pgqueue.App"),
    ("no_such_module:app", "cannot import --app module 'no_such_module'"),
])
def test_a_bad_app(dsn: str, reference: str, says: str) -> None:
    """Was "got NoneType"."""
    for name, result in _run_all(COMMANDS, dsn, "--app", reference).items():
        _assert_one_line(name, result, cli.EXIT_BAD_APP, says)


def test_a_job_that_does_not_exist_and_one_in_the_wrong_state(ledger_dsn: str) -> None:
    for command in ("job", "retry", "cancel"):
        _assert_one_line(command, run_cli(command, MISSING, dsn=ledger_dsn),
                         cli.EXIT_NOT_FOUND, f"no job with id {MISSING}")
    queued = _defer(ledger_dsn, "tests.apps.core_app.add", "[1, 2]")
    _assert_one_line("retry", run_cli("retry", str(queued), dsn=ledger_dsn),
                     cli.EXIT_WRONG_STATE, f"job {queued} is queued: only finished jobs")
    assert run_cli("cancel", str(queued), dsn=ledger_dsn).returncode == 0
    _assert_one_line("cancel", run_cli("cancel", str(queued), dsn=ledger_dsn),
                     cli.EXIT_WRONG_STATE, f"job {queued} is already cancelled")


def test_migrate_sql_into_a_closed_pipe_is_quiet() -> None:
    """`pgqueue migrate --sql | head` raised BrokenPipeError."""
    shell = f"{' '.join(cli_command('migrate', '--sql'))} | head -1; exit ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", shell], env=cli_env(None), cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == "-- 0001_initial\n"


def _defer(dsn: str, *args: str) -> int:
    result = run_cli("--app", APP, "defer", *args, dsn=dsn)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


# -- seeing a failure ------------------------------------------------------------------------

def test_a_failed_jobs_traceback_is_in_the_worker_log_and_pgqueue_job(ledger_dsn: str) -> None:
    job_id = _defer(ledger_dsn, "tests.apps.core_app.always_fails")
    worker = run_cli("--app", APP, "worker", "--one-shot", dsn=ledger_dsn)
    assert worker.returncode == 0, worker.stderr
    failed = [line for line in worker.stderr.splitlines() if " job.failed " in line]
    assert len(failed) == 1 and 'error="ValueError: attempt 3 failed"' in failed[0]
    after = worker.stderr.split(failed[0], 1)[1].splitlines()
    assert after[1] == "Traceback (most recent call last):", after
    assert 'raise ValueError(f"attempt {context.attempt} failed")' in "\n".join(after)
    assert worker.stderr.count("Traceback") == 1  # the retries stay one line each

    shown = run_cli("job", str(job_id), dsn=ledger_dsn)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"job {job_id}: tests.apps.core_app.always_fails (failed)"
    assert "  attempts         3 of 3" in lines
    assert "  error            ValueError: attempt 3 failed" in lines
    assert "    Traceback (most recent call last):" in lines
    assert "    ValueError: attempt 3 failed" in lines

    document = json.loads(run_cli("job", str(job_id), "--json", dsn=ledger_dsn).stdout)
    assert (document["id"], document["state"], document["attempts"]) == (job_id, "failed", 3)
    assert document["error"]["type"] == "ValueError"
    assert document["error"]["traceback"].startswith("Traceback (most recent call last):")
    assert document["worker"] is None  # released when it finished
    assert {"unique_key", "lock", "concurrency_key", "timeout_seconds"} <= document.keys()

    listed = run_cli("jobs", "--state", "failed", dsn=ledger_dsn)
    assert "pgqueue job ID shows a job's whole error and traceback" in listed.stdout


def test_json_output_of_jobs_stats_and_schedules(ledger_dsn: str) -> None:
    job_id = _defer(ledger_dsn, "tests.apps.core_app.add", '{"a": 1, "b": 2}', "--queue", "math")
    [job] = json.loads(run_cli("jobs", "--json", dsn=ledger_dsn).stdout)
    assert (job["id"], job["task_name"], job["queue"], job["kwargs"], job["state"]) == (
        job_id, "tests.apps.core_app.add", "math", {"a": 1, "b": 2}, "queued")
    assert job["error"] is None and job["run_at"].endswith("+00:00")
    [stats] = json.loads(run_cli("stats", "--json", dsn=ledger_dsn).stdout)
    assert (stats["queue"], stats["queued"]) == ("math", 1)
    with psycopg.connect(ledger_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.schedules (id, task_name, every, next_tick_at) "
                     "VALUES ('nightly', 'x', interval '1 day', now() + interval '1 day')")
    [schedule] = json.loads(run_cli("schedules", "--json", dsn=ledger_dsn).stdout)
    assert (schedule["id"], schedule["every"], schedule["state"]) == ("nightly", 86400.0,
                                                                      "active")
    assert schedule["timing"] == "every 1d" or schedule["timing"].startswith("every ")


# -- durations --------------------------------------------------------------------------------

def test_an_age_without_a_unit_is_refused_and_dry_run_deletes_nothing(ledger_dsn: str) -> None:
    """`prune --keep-succeeded 7` deleted 409 jobs: 7 was read as seconds."""
    with psycopg.connect(ledger_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task_name, state, finished_at, attempts) "
                     "SELECT 't', 'succeeded', now() - interval '1 hour', 1 "
                     "FROM generate_series(1, 409)")
    bare = run_cli("prune", "--keep-succeeded", "7", dsn=ledger_dsn)
    assert bare.returncode == cli.EXIT_USAGE
    assert bare.stderr.count("\n") == 1 and "'7' has no unit: write 7d for days" in bare.stderr
    dry = run_cli("prune", "--keep-succeeded", "30m", "--dry-run", dsn=ledger_dsn)
    assert dry.stdout.strip() == ("would prune 409 finished jobs (409 succeeded, 0 failed, "
                                  "0 cancelled); keeping succeeded 30m, failed 30d, "
                                  "cancelled 7d")
    kept = run_cli("prune", "--keep-succeeded", "7d", dsn=ledger_dsn)
    assert kept.stdout.strip().startswith("pruned 0 finished jobs")
    assert scalar(ledger_dsn, "SELECT count(*) FROM pgqueue.jobs") == 409


def test_delay_takes_the_same_duration_syntax(ledger_dsn: str) -> None:
    job_id = _defer(ledger_dsn, "tests.apps.core_app.add", "[1, 2]", "--delay", "10m")
    delay = scalar(ledger_dsn, "SELECT extract(epoch FROM run_at - enqueued_at) "
                               "FROM pgqueue.jobs WHERE id = %s", (job_id,))
    assert 599 <= delay <= 601
    seconds = _defer(ledger_dsn, "tests.apps.core_app.add", "[1, 2]", "--delay", "90")
    assert 89 <= scalar(ledger_dsn, "SELECT extract(epoch FROM run_at - enqueued_at) "
                                    "FROM pgqueue.jobs WHERE id = %s", (seconds,)) <= 91
    wrong = run_cli("--app", APP, "defer", "tests.apps.core_app.add", "--delay", "soon",
                    dsn=ledger_dsn)
    assert wrong.returncode == 2 and "not a duration: 'soon'" in wrong.stderr


# -- logs -------------------------------------------------------------------------------------

def test_json_log_lines_have_stable_keys_and_the_traceback(ledger_dsn: str) -> None:
    job_id = _defer(ledger_dsn, "tests.apps.core_app.always_fails")
    result = run_cli("--app", APP, "--log-format", "json", "worker", "--one-shot",
                     dsn=ledger_dsn)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert all(list(r)[:5] == ["ts", "level", "logger", "event", "message"] for r in records)
    [failed] = [r for r in records if r["event"] == "job.failed"]
    assert (failed["level"], failed["job_id"], failed["attempt"]) == ("error", job_id, 3)
    assert isinstance(failed["duration_ms"], float)
    assert failed["traceback"].endswith("ValueError: attempt 3 failed")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", failed["ts"])
    started = next(r for r in records if r["event"] == "worker.started")
    assert started["tasks"].startswith("tests.apps.core_app.")


def test_logfmt_quotes_like_logfmt_and_durations_keep_their_precision(ledger_dsn: str) -> None:
    _defer(ledger_dsn, "tests.apps.core_app.always_fails")
    result = run_cli("--app", APP, "worker", "--one-shot", dsn=ledger_dsn,
                     PGQUEUE_LOG_FORMAT="logfmt")
    [failed] = [line for line in result.stderr.splitlines() if "event=job.failed" in line]
    assert failed.startswith("ts=") and " level=error logger=pgqueue.worker " in failed
    assert ' error="ValueError: attempt 3 failed" ' in failed
    assert 'traceback="Traceback (most recent call last):\\n' in failed
    assert "'" not in failed.split("traceback=")[0]  # no Python repr quoting
    duration = re.search(r" duration_ms=(\S+)", failed).group(1)
    assert duration != "0.0" and len(duration.replace(".", "").lstrip("0")) >= 2, duration


# -- help, version, environment ------------------------------------------------------------

def test_version() -> None:
    result = run_cli("--version", dsn=None)
    assert (result.returncode, result.stdout.strip()) == (
        0, f"pgqueue {pgqueue.__version__} (pgqueue-tasks)")


def _subparsers() -> dict[str, object]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {"pgqueue": parser, **action.choices}


def test_every_flag_has_help_and_shows_its_default() -> None:
    for name, parser in _subparsers().items():
        for action in parser._actions:  # type: ignore[attr-defined]
            if action.__class__.__name__ in ("_HelpAction", "_SubParsersAction"):
                continue
            assert action.help, (name, action.dest)
    help_text = run_cli("worker", "--help", dsn=None).stdout
    for shown in ("(default: 1)", "(default: 5s)", "(default: 30s)", "(default: 1h)",
                  "(default: 127.0.0.1)", "(default: 7d)", "(default: *)", "(default: True)",
                  "[env PGQUEUE_CONCURRENCY]", "[env PGQUEUE_QUEUES]"):
        assert shown in " ".join(help_text.split()), shown


@pytest.mark.parametrize(("env", "argv", "queues", "concurrency"), [
    ({"PGQUEUE_CONCURRENCY": "4", "PGQUEUE_QUEUES": "emails:2,reports"}, (),
     "emails:2,reports", 6),
    ({"PGQUEUE_CONCURRENCY": "4"}, ("-c", "2"), "*", 2),  # the flag wins
    ({}, ("-q", "*"), "*", 1),
    ({}, ("-q", ""), "*", 1),
])
def test_worker_flags_from_the_environment(ledger_dsn: str, env: dict[str, str],
                                           argv: tuple[str, ...], queues: str,
                                           concurrency: int) -> None:
    result = run_cli("--app", APP, "worker", "--one-shot", *argv, dsn=ledger_dsn, **env)
    assert result.returncode == 0, result.stderr
    started = next(line for line in result.stderr.splitlines() if "worker.started" in line)
    assert f" queues={queues} " in started and f" concurrency={concurrency} " in started


def test_a_bad_environment_value_is_one_line() -> None:
    result = run_cli("worker", dsn=None, PGQUEUE_CONCURRENCY="lots")
    assert result.returncode == cli.EXIT_USAGE
    assert result.stderr.strip().splitlines() == [
        "pgqueue worker: error: argument -c/--concurrency: not a whole number: 'lots' "
        "(see pgqueue worker --help)"]


# -- extras ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("blocked", "argv", "extra"), [
    ("rich", ("top", "--once"), "pgqueue-tasks[top]"),
    ("prometheus_client", ("--app", APP, "worker", "--one-shot", "--metrics-port", "9"),
     "pgqueue-tasks[metrics]"),
])
def test_a_missing_extra_is_named_in_one_line(dsn: str, blocked: str, argv: tuple[str, ...],
                                              extra: str) -> None:
    """The command's own dependency, not installed (here: made unimportable)."""
    code = (f"import sys; sys.modules[{blocked!r}] = None; "
            f"from pgqueue.cli import entry_point; sys.argv = ['pgqueue', *{argv!r}]; "
            "entry_point()")
    result = subprocess.run([sys.executable, "-c", code], env=cli_env(dsn), cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == cli.EXIT_USAGE, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"pgqueue: error: {'pgqueue top' if blocked == 'rich' else '--metrics-port'} needs "
        f"{blocked}, which is not installed: pip install '{extra}'"]


def test_the_readme_shows_what_the_commands_print() -> None:
    """README's CLI examples are real output: each listed command line's first output line is
    what the command prints today (checked against its shape, not its numbers)."""
    readme = (REPO_ROOT / "README.md").read_text()
    for command in ("pgqueue job", "pgqueue prune", "pgqueue --version"):
        assert f"$ {command}" in readme, command

