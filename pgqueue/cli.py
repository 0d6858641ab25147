"""The `pgqueue` command line. `build_parser` is shared with the Django management command so
both take exactly the same flags; every failure is one line on stderr and a named exit code.

Every flag has help text that shows its default; the worker's main flags also read
environment variables (`PGQUEUE_CONCURRENCY`, `PGQUEUE_QUEUES`, ..., named in `--help`), a flag
on the command line winning over its variable. Durations take one syntax everywhere (`500ms`,
`30s`, `10m`, `12h`, `7d`, `1h30m`, pgqueue.durations); ages that decide what is deleted must
carry their unit.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn

from pgqueue import __version__, store
from pgqueue.app import App
from pgqueue.durations import format_duration, parse_age, parse_duration
from pgqueue.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    DuplicateJob,
    EnqueueError,
    InvalidLimit,
    JobNotFound,
    MigrationInProgress,
    PermissionDenied,
    PgQueueError,
    ReadOnlyDatabase,
    SchemaMissing,
)
from pgqueue.limits import check_limit, parse_rate_limit
from pgqueue.logs import LOG_FORMATS, configure_logging
from pgqueue.maintenance.retention import RetentionPolicy, prune
from pgqueue.migrate import apply_migrations, full_sql, migration_files, pending_migrations
from pgqueue.observe.render import Out, shorten, table, timestamp, to_json
from pgqueue.printable import printable
from pgqueue.readonly import require_writable
from pgqueue.types import QueueStats
from pgqueue.validation import MAX_NESTING

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DATABASE_UNAVAILABLE = 3
EXIT_SCHEMA_MISSING = 4
EXIT_BAD_APP = 5
EXIT_NOT_FOUND = 6
EXIT_READ_ONLY = 7
EXIT_WRONG_STATE = 8
"""The job exists but is not in a state the command applies to (cancel a finished job, retry
an unfinished one, retry while another job holds its unique key)."""

ALL_QUEUES = ("", "*")


class CommandError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load_app(reference: str) -> App:
    """`module:attr` or `module.attr`; the current directory is importable, as with python -m."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    separator = ":" if ":" in reference else "."
    module_name, _, attr = reference.rpartition(separator)
    if not module_name or not attr:
        raise CommandError(f"--app must look like module:attr, not {reference!r}", EXIT_BAD_APP)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CommandError(f"cannot import --app module {module_name!r}: "
                           f"{type(exc).__name__}: {exc}", EXIT_BAD_APP) from exc
    if not hasattr(module, attr):
        raise CommandError(f"--app {reference!r}: module {module_name!r} has no attribute "
                           f"{attr!r}", EXIT_BAD_APP)
    app = getattr(module, attr)
    if not isinstance(app, App):
        raise CommandError(f"--app {reference!r} is a {type(app).__name__}, not a pgqueue.App",
                           EXIT_BAD_APP)
    return app


# -- argument types ----------------------------------------------------------------------------

def _csv(value: str) -> list[str]:
    return [part for part in value.split(",") if part]


def _queue_slots(value: str) -> tuple[list[str], dict[str, int]] | None:
    """`emails:5,reports:1,default`: the queues, and the slots of their own some have; `*` or
    nothing: every queue (None)."""
    if value.strip() in ALL_QUEUES:
        return None
    queues: list[str] = []
    slots: dict[str, int] = {}
    for part in _csv(value):
        if part.strip() == "*":
            raise argparse.ArgumentTypeError("'*' means every queue: give it alone")
        name, colon, count = part.rpartition(":")
        if colon and count.lstrip("-").isdigit():
            if int(count) < 1:
                raise argparse.ArgumentTypeError(f"{part!r}: a queue's slots must be >= 1")
            queues.append(name)
            slots[name] = int(count)
        else:
            queues.append(part)
    return queues, slots


def _aware_datetime(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("--run-at needs a timezone, e.g. 2030-01-01T09:00+00:00")
    return parsed


def _seconds(value: str) -> float:
    """A duration; a bare number is seconds."""
    try:
        return parse_duration(value)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_seconds(value: str) -> float:
    seconds = _seconds(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {value!r}")
    return seconds


def _age(value: str) -> float | None:
    """A duration that must carry its unit, or `forever`."""
    try:
        return parse_age(value)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {number}")
    return number


def _count(value: str) -> int:
    return 0 if value.strip() == "0" else _positive_int(value)


# -- the parser ------------------------------------------------------------------------------

class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, when it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("(default" in text or not action.option_strings  # some Pythons' BooleanOptional-
                or action.default in (None, False, argparse.SUPPRESS)):  # Action add their own
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse prints the whole usage first), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(name, default)


def build_parser(parser: argparse.ArgumentParser | None = None, *,
                 with_connection_flags: bool = True) -> argparse.ArgumentParser:
    """Add pgqueue's global flags and subcommands to `parser` (a new one if None)."""
    parser = parser or _Parser(
        prog="pgqueue", formatter_class=_HelpFormatter,
        description="Postgres-native task queue: run workers, inspect and steer jobs.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage or bad input, 3 database unavailable, "
               "4 schema missing or out of date, 5 --app not importable, 6 job or workflow "
               "not found, 7 read-only database, 8 job or workflow in the wrong state.")
    if with_connection_flags:
        parser.add_argument("--version", action="version",
                            version=f"pgqueue {__version__} (pgqueue-tasks)",
                            help="print the version and exit")
        parser.add_argument("--app", default=_env("PGQUEUE_APP", None), metavar="MODULE:ATTR",
                            help="your pgqueue.App, e.g. myproject.tasks:app, needed to run or "
                                 "defer tasks [env PGQUEUE_APP]")
        parser.add_argument("--dsn", default=None,
                            help="database to use (default: the app's, else PGQUEUE_DSN, else "
                                 "DATABASE_URL)")
        parser.add_argument("--pooler", choices=["none", "transaction"], default=None,
                            help="transaction: the DSN goes through a transaction-mode pooler "
                                 "(PgBouncer, Supavisor, RDS Proxy): no prepared statements, "
                                 "no LISTEN through it (default: none; env PGQUEUE_POOLER; "
                                 "docs/deployment.md)")
    parser.add_argument("--log-level", default=_env("PGQUEUE_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                        help="log lines at this level and above [env PGQUEUE_LOG_LEVEL]")
    parser.add_argument("--log-format", default=_env("PGQUEUE_LOG_FORMAT", "text"),
                        choices=LOG_FORMATS,
                        help="text for people, logfmt or json (one object a line, stable "
                             "keys) for log pipelines [env PGQUEUE_LOG_FORMAT]")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text,
                                   formatter_class=_HelpFormatter)

    _worker_flags(command("worker", "run jobs"))

    migrate = command("migrate", "create or upgrade the pgqueue schema")
    migrate.add_argument("--sql", action="store_true",
                         help="print the SQL (for psql -1 -f) instead of running it")

    defer = command("defer", "enqueue a job of a registered task (needs --app)")
    defer.add_argument("task", help="the task's name, e.g. myproject.tasks.send_email")
    defer.add_argument("json_args", nargs="?", default="{}", metavar="JSON_ARGS",
                       help='a JSON object of keyword arguments or an array of positional '
                            'ones (default: {})')
    defer.add_argument("--queue", default=None, help="queue (default: the task's)")
    defer.add_argument("--priority", type=int, default=None,
                       help="-1000..1000, higher first (default: the task's)")
    schedule = defer.add_mutually_exclusive_group()
    schedule.add_argument("--delay", type=_seconds, default=None, metavar="DURATION",
                          help="run after this long: 30 (seconds), 10m, 2h, 1d (default: now)")
    schedule.add_argument("--run-at", type=_aware_datetime, default=None, metavar="ISO_TIME",
                          help="run at this time, e.g. 2030-01-01T09:00+00:00 (default: now)")
    defer.add_argument("--unique-key", default=None,
                       help="at most one queued or running job holds this key: a duplicate "
                            "names the job holding it")
    defer.add_argument("--lock", default=None,
                       help="jobs sharing a lock run one at a time, in enqueue order")
    defer.add_argument("--on-conflict", choices=["return", "raise"], default="return",
                       help="a duplicate of --unique-key: say which job holds the key and exit "
                            "0 (return), or fail with exit 1 (raise)")

    jobs = command("jobs", "list jobs, newest first")
    jobs.add_argument("--state", choices=["queued", "waiting", "running", "succeeded", "failed",
                                          "cancelled"], help="only jobs in this state")
    jobs.add_argument("--queue", help="only jobs of this queue")
    jobs.add_argument("--task", help="only jobs of this task")
    jobs.add_argument("--limit", type=_positive_int, default=50, help="at most this many")
    _json_flag(jobs)

    job = command("job", "show one job: every field, its error and traceback")
    job.add_argument("job_id", type=int, metavar="ID", help="the job's id")
    _json_flag(job)

    workflow = command("workflow", "show a workflow (chain, group, chord): its state and "
                                   "every job's, with parents, timings, results and errors")
    workflow.add_argument("workflow_id", metavar="ID", help="the workflow's id (a UUID)")
    workflow.add_argument("--cancel", action="store_true",
                          help="cancel every job of it that has not run (a running one is "
                               "asked to abort), then show it")
    _json_flag(workflow)

    for name, help_text in (("retry", "queue a finished job again"),
                            ("cancel", "cancel a queued job or abort a running one")):
        command(name, help_text).add_argument("job_id", type=int, metavar="ID",
                                              help="the job's id")

    prune_command = command("prune", "delete finished jobs past their retention age")
    _retention_flags(prune_command)
    prune_command.add_argument("--dry-run", action="store_true",
                               help="count what would be deleted, delete nothing")

    stats = command("stats", "per-queue counts and oldest waiting job")
    _json_flag(stats)
    top = command("top", "live view: queues, rates, latency, workers, failures (needs "
                         "pgqueue-tasks[top])")
    top.add_argument("--interval", type=_positive_seconds, default="2s", metavar="DURATION",
                     help="time between refreshes")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    command("healthcheck", "exit 0 if the database is writable and the schema current")
    schedules = command("schedules", "list periodic schedules, pause or resume one")
    toggle = schedules.add_mutually_exclusive_group()
    toggle.add_argument("--pause", metavar="ID", help="stop schedule ID from firing")
    toggle.add_argument("--resume", metavar="ID", help="let schedule ID fire again")
    _json_flag(schedules)

    queue = command("queue", "show or change a queue's limits, for every worker at once")
    queue.add_argument("name", help="the queue")
    for flag, help_text in (
            ("--concurrency", "at most N jobs of the queue running at once on all workers"),
            ("--per-key-concurrency", "at most N running at once per concurrency key"),
            ("--rate-limit", "at most N starts in any window of the period: 10/s, 100/m, 1000/h, "
                             "5/d")):
        queue.add_argument(flag, metavar="N|none", default=None,
                           help=f"{help_text} ('none' removes the limit)")
    queue.add_argument("--reset", action="store_true",
                       help="forget the operator's limits: the queue's declaration in code "
                            "applies again at the next worker start")
    paused = queue.add_mutually_exclusive_group()
    paused.add_argument("--pause", action="store_true", help="stop workers claiming from it")
    paused.add_argument("--resume", action="store_true", help="let workers claim from it again")
    return parser


def _worker_flags(worker: argparse.ArgumentParser) -> None:
    worker.add_argument("-q", "--queues", type=_queue_slots, default=_env("PGQUEUE_QUEUES", "*"),
                        help="comma-separated queues, '*' or '' for all; QUEUE:N gives a queue "
                             "N slots of its own, e.g. emails:5,reports:1,default (queues "
                             "without :N share --concurrency) [env PGQUEUE_QUEUES]")
    worker.add_argument("-c", "--concurrency", type=_positive_int,
                        default=_env("PGQUEUE_CONCURRENCY", "1"),
                        help="jobs run at once [env PGQUEUE_CONCURRENCY]")
    worker.add_argument("--prefetch", type=_count, default=_env("PGQUEUE_PREFETCH", "0"),
                        metavar="N",
                        help="claim N jobs beyond --concurrency, held until a slot frees "
                             "(docs/worker.md) [env PGQUEUE_PREFETCH]")
    worker.add_argument("-n", "--name", default=_env("PGQUEUE_WORKER_NAME", None),
                        help="the worker's name in pgqueue.workers and logs (default: "
                             "host-pid) [env PGQUEUE_WORKER_NAME]")
    mode = worker.add_mutually_exclusive_group()
    mode.add_argument("--wait", dest="one_shot", action="store_false", default=False,
                      help="keep waiting for jobs (the default)")
    mode.add_argument("--one-shot", dest="one_shot", action="store_true",
                      help="run every due job, exit 0 when none is left")
    worker.add_argument("--listen", action=argparse.BooleanOptionalAction, default=True,
                        help="wake on NOTIFY, or only poll")
    worker.add_argument("--listen-dsn", default=None,
                        help="direct connection for LISTEN when the DSN goes through a pooler "
                             "(env PGQUEUE_LISTEN_DSN; docs/deployment.md)")
    worker.add_argument("--poll-interval", type=_seconds, metavar="DURATION",
                        default=_env("PGQUEUE_POLL_INTERVAL", "5s"),
                        help="safety-net poll when no NOTIFY comes [env PGQUEUE_POLL_INTERVAL]")
    worker.add_argument("--shutdown-timeout", type=_seconds, metavar="DURATION",
                        default=_env("PGQUEUE_SHUTDOWN_TIMEOUT", "30s"),
                        help="time running jobs get to finish after SIGTERM before they are put "
                             "back to queued [env PGQUEUE_SHUTDOWN_TIMEOUT]")
    worker.add_argument("--delete-jobs", choices=["never", "successful", "always"],
                        default=_env("PGQUEUE_DELETE_JOBS", "never"),
                        help="delete finished jobs at once instead of keeping them "
                             "[env PGQUEUE_DELETE_JOBS]")
    worker.add_argument("--heartbeat-interval", type=_seconds, metavar="DURATION",
                        default=_env("PGQUEUE_HEARTBEAT_INTERVAL", "5s"),
                        help="time between heartbeats (and stalled-job rescues) "
                             "[env PGQUEUE_HEARTBEAT_INTERVAL]")
    worker.add_argument("--heartbeat-timeout", type=_seconds, metavar="DURATION",
                        default=_env("PGQUEUE_HEARTBEAT_TIMEOUT", "30s"),
                        help="a worker silent this long is dead and its jobs are rescued "
                             "[env PGQUEUE_HEARTBEAT_TIMEOUT]")
    worker.add_argument("--progress-interval", type=_seconds, metavar="DURATION",
                        default=_env("PGQUEUE_PROGRESS_INTERVAL", "1s"),
                        help="time between writes of what running tasks report with "
                             "context.set_progress / set_meta (one statement for all of them) "
                             "[env PGQUEUE_PROGRESS_INTERVAL]")
    worker.add_argument("--supervise", action="store_true",
                        help="run the worker in a child process, restarted if it dies")
    worker.add_argument("--prune-every", type=_age, metavar="DURATION",
                        default=_env("PGQUEUE_PRUNE_EVERY", "1h"),
                        help="how often this worker prunes finished jobs (0 or never: not at "
                             "all) [env PGQUEUE_PRUNE_EVERY]")
    _retention_flags(worker)
    worker.add_argument("--metrics-port", type=int, default=_env("PGQUEUE_METRICS_PORT", None),
                        help="serve Prometheus metrics on this port (needs "
                             "pgqueue-tasks[metrics]; docs/metrics.md) [env PGQUEUE_METRICS_PORT]")
    worker.add_argument("--metrics-addr", default=_env("PGQUEUE_METRICS_ADDR", "127.0.0.1"),
                        metavar="ADDRESS",
                        help="address the metrics endpoint binds: 0.0.0.0 for every interface "
                             "(a container scraped from outside) [env PGQUEUE_METRICS_ADDR]")
    worker.add_argument("--periodic", action=argparse.BooleanOptionalAction, default=True,
                        help="run the periodic scheduler, or not")
    _pool_flags(worker)


def _pool_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", choices=["thread", "process"],
                        default=_env("PGQUEUE_POOL", "thread"),
                        help="run plain-function tasks in -c threads, or in -c child processes "
                             "for CPU-bound or leaky tasks (docs/worker.md) [env PGQUEUE_POOL]")
    parser.add_argument("--max-tasks-per-child", type=_positive_int, default=None, metavar="N",
                        help="replace a child process after N jobs (default: never)")
    parser.add_argument("--max-memory-per-child", type=_positive_int, default=None,
                        metavar="MB",
                        help="replace a child process after a job that left it holding MB MiB "
                             "or more (default: never)")


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _retention_flags(parser: argparse.ArgumentParser) -> None:
    defaults = RetentionPolicy()
    for state in ("succeeded", "failed", "cancelled"):
        default = getattr(defaults, f"keep_{state}")
        parser.add_argument(f"--keep-{state}", type=_age, metavar="AGE",
                            default="forever" if default is None else format_duration(default),
                            help=f"keep {state} jobs this long: 12h, 7d, 2w or forever (a unit "
                                 "is required)")
    parser.add_argument("--prune-batch-size", type=_positive_int, default=defaults.batch_size,
                        help="jobs deleted per transaction")


def _retention(args: argparse.Namespace) -> RetentionPolicy:
    return RetentionPolicy(keep_succeeded=args.keep_succeeded, keep_failed=args.keep_failed,
                           keep_cancelled=args.keep_cancelled, batch_size=args.prune_batch_size)


# -- running a command -------------------------------------------------------------------------

def run_command(args: argparse.Namespace, app: App, out: Out = print) -> int:
    configure_logging(args.log_level, getattr(args, "log_format", None))
    handler = _HANDLERS[args.command]
    try:
        if args.command not in ("migrate", "worker", "healthcheck"):
            _require_schema(app)
        return handler(args, app, out)
    except MigrationInProgress as exc:
        raise CommandError(str(exc), EXIT_FAILURE) from exc
    except SchemaMissing as exc:
        raise CommandError(str(exc), EXIT_SCHEMA_MISSING) from exc
    except ReadOnlyDatabase as exc:  # before DatabaseUnavailable, its base
        raise CommandError(str(exc), EXIT_READ_ONLY) from exc
    except DatabaseUnavailable as exc:
        raise CommandError(str(exc), EXIT_DATABASE_UNAVAILABLE) from exc
    except JobNotFound as exc:
        raise CommandError(str(exc), EXIT_NOT_FOUND) from exc
    except EnqueueError as exc:  # the type names what is wrong with the job
        raise CommandError(f"{type(exc).__name__}: {exc}", EXIT_USAGE) from exc
    except ConfigurationError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc


def _worker(args: argparse.Namespace, app: App, out: Out) -> int:
    require_writable(app.db)
    _require_schema(app)
    app.db.close()  # the checks' connections: the worker opens its own (three in all)
    if args.supervise:
        from pgqueue.worker.supervisor import Supervisor, child_argv

        argv = getattr(args, "argv", sys.argv[1:])
        return Supervisor(app, child_argv(argv), args.heartbeat_timeout).run()
    if args.metrics_port is not None:
        from pgqueue.observe.metrics import metrics_service

        if metrics_service not in app.worker_services:
            app.worker_services.append(metrics_service)
    if args.listen_dsn:
        app.listen_dsn = args.listen_dsn
    return app.run_worker(
        heartbeat_interval=args.heartbeat_interval, heartbeat_timeout=args.heartbeat_timeout,
        progress_interval=args.progress_interval, prune_every=args.prune_every or None,
        retention=_retention(args),
        queues=args.queues[0] if args.queues else None,
        queue_slots=args.queues[1] if args.queues and args.queues[1] else None,
        concurrency=args.concurrency, prefetch=args.prefetch, name=args.name,
        one_shot=args.one_shot, listen=args.listen, poll_interval=args.poll_interval,
        metrics_port=args.metrics_port, metrics_addr=args.metrics_addr,
        shutdown_timeout=args.shutdown_timeout, delete_jobs=args.delete_jobs,
        periodic=args.periodic, pool=args.pool, max_tasks_per_child=args.max_tasks_per_child,
        max_memory_per_child=args.max_memory_per_child, app_path=getattr(args, "app", None))


def _migrate(args: argparse.Namespace, app: App, out: Out) -> int:
    if args.sql:
        out(full_sql())
        return EXIT_OK
    applied = apply_migrations(app.dsn)
    out(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    return EXIT_OK


def _defer(args: argparse.Namespace, app: App, out: Out) -> int:
    try:
        payload = json.loads(args.json_args)
    except ValueError as exc:
        raise CommandError(f"JSON_ARGS is not valid JSON: {exc}", EXIT_USAGE) from exc
    except RecursionError as exc:  # json's parser recurses; the limit is far lower anyway
        raise CommandError(f"JSON_ARGS is nested too deep to parse (arguments may nest "
                           f"{MAX_NESTING} levels)", EXIT_USAGE) from exc
    if isinstance(payload, dict):
        positional, keywords = [], payload
    elif isinstance(payload, list):
        positional, keywords = payload, {}
    else:
        raise CommandError("JSON_ARGS must be a JSON object or array", EXIT_USAGE)
    options = {key: value for key, value in (
        ("queue", args.queue), ("priority", args.priority), ("delay", args.delay),
        ("run_at", args.run_at), ("lock", args.lock)) if value is not None}
    if args.unique_key is not None:
        options.update(unique_key=args.unique_key, on_conflict="raise")
    require_writable(app.db)
    try:
        job_id = app.defer(args.task, positional, keywords, **options)
    except DuplicateJob as duplicate:
        if args.on_conflict == "raise":
            raise CommandError(str(duplicate), EXIT_FAILURE) from duplicate
        out(f"job {duplicate.job_id} already holds unique key {args.unique_key!r}: "
            "nothing deferred")
        return EXIT_OK
    out(f"deferred job {job_id}")
    return EXIT_OK


def _jobs(args: argparse.Namespace, app: App, out: Out) -> int:
    found = app.list_jobs(state=args.state, queue=args.queue, task_name=args.task,
                          limit=args.limit)
    if args.json:
        out(to_json(found))
        return EXIT_OK
    table(out, ("id", "state", "queue", "task", "attempts", "run_at", "finished_at", "error"),
          [(j.id, j.state, j.queue, j.task_name, f"{j.attempts}/{j.max_attempts}",
            timestamp(j.run_at), timestamp(j.finished_at),
            shorten(f"{j.error.type}: {j.error.message}", 60) if j.error else "")
           for j in found])
    if any(j.error for j in found):
        out("(pgqueue job ID shows a job's whole error and traceback)")
    return EXIT_OK


def _job(args: argparse.Namespace, app: App, out: Out) -> int:
    from pgqueue.observe.job_view import job_document, render_job

    row = app.db.run(store.get_job_detail(args.job_id))
    if row is None:
        raise JobNotFound(f"no job with id {args.job_id}")
    document = job_document(row)
    if args.json:
        out(to_json(document))
    else:
        render_job(out, document)
    return EXIT_OK


def _workflow(args: argparse.Namespace, app: App, out: Out) -> int:
    from pgqueue.canvas import workflow_id_of
    from pgqueue.observe.workflow_view import render_workflow, workflow_document

    workflow_id = workflow_id_of(args.workflow_id)
    unfinished: set[int] = set()
    if args.cancel:
        require_writable(app.db)
        unfinished = {job.id for job in app.get_workflow(workflow_id) if not job.state.is_final}
        if unfinished:
            app.cancel_workflow(workflow_id)
    jobs = app.get_workflow(workflow_id)
    if not jobs:
        raise CommandError(f"no workflow with id {workflow_id}", EXIT_NOT_FOUND)
    document = workflow_document(workflow_id, jobs)
    if args.cancel and not unfinished:
        raise CommandError(f"workflow {workflow_id} is already {document['state']}: nothing "
                           "left to cancel", EXIT_WRONG_STATE)
    if args.json:
        out(to_json(document))
        return EXIT_OK
    if args.cancel:
        ended = Counter(job.state.value for job in jobs if job.id in unfinished)
        out(f"cancelled {ended['cancelled']} job{'s' if ended['cancelled'] != 1 else ''}"
            + (f"; {ended['running']} running: abort requested" if ended["running"] else ""))
    render_workflow(out, document)
    return EXIT_OK


def _retry(args: argparse.Namespace, app: App, out: Out) -> int:
    require_writable(app.db)
    try:
        retried = app.retry_job(args.job_id)
    except DuplicateJob as duplicate:  # like a job in the wrong state: not now
        raise CommandError(f"job {args.job_id}: {duplicate}", EXIT_WRONG_STATE) from duplicate
    if not retried:
        job = app.get_job(args.job_id)  # raises JobNotFound for an unknown id
        raise CommandError(f"job {args.job_id} is {job.state}: only finished jobs can be "
                           "retried", EXIT_WRONG_STATE)
    out(f"job {args.job_id} queued again")
    return EXIT_OK


def _cancel(args: argparse.Namespace, app: App, out: Out) -> int:
    require_writable(app.db)
    state = app.cancel_job(args.job_id)
    if state is None:
        job = app.get_job(args.job_id)
        raise CommandError(f"job {args.job_id} is already {job.state}: only queued or running "
                           "jobs can be cancelled", EXIT_WRONG_STATE)
    out(f"job {args.job_id} cancelled" if state == "cancelled"
        else f"job {args.job_id} is running: abort requested")
    return EXIT_OK


def _stats(args: argparse.Namespace, app: App, out: Out) -> int:
    stats = app.queue_stats()
    if args.json:
        out(to_json(stats))
        return EXIT_OK
    table(out, ("queue", "queued", "running", "waiting_on_lock", "succeeded", "failed",
                "cancelled", "oldest_waiting_s", "limits", "held_back_by"),
          [(s.queue, s.queued, s.running, s.waiting_on_lock, s.succeeded, s.failed,
            s.cancelled,
            "" if s.oldest_waiting_seconds is None else f"{s.oldest_waiting_seconds:.1f}",
            _limits_summary(s), s.held_back_by or "") for s in stats])
    unserved = app.db.run(store.unserved_jobs())
    if unserved:
        total = sum(row["due"] for row in unserved)
        out(f"{total} due job{'s wait' if total > 1 else ' waits'} for a worker that has "
            "its task and serves its queue (pgqueue.unserved_jobs): " + ", ".join(
                f"{printable(row['task_name'])} in {printable(row['queue'])}: {row['due']}"
                for row in unserved))
    return EXIT_OK


def _limits_summary(stats: QueueStats) -> str:
    """`concurrency 3/5, per key 2, rate 7/10 per 00:01:00`: each limit against its use."""
    parts = []
    if stats.concurrency is not None:
        parts.append(f"concurrency {stats.running}/{stats.concurrency}")
    if stats.per_key_concurrency is not None:
        parts.append(f"per key {stats.per_key_concurrency}")
    if stats.rate_limit is not None:
        parts.append(f"rate {stats.started_in_rate_window}/{stats.rate_limit}")
    return ", ".join(parts)


def _prune(args: argparse.Namespace, app: App, out: Out) -> int:
    policy = _retention(args)
    kept = ", ".join(f"{state} {'forever' if age is None else format_duration(age)}"
                     for state, age in (("succeeded", policy.keep_succeeded),
                                        ("failed", policy.keep_failed),
                                        ("cancelled", policy.keep_cancelled)))
    if args.dry_run:
        counts = app.db.run(policy.prunable())
        out(f"would prune {sum(counts.values())} finished jobs "
            f"({', '.join(f'{n} {state}' for state, n in counts.items())}); keeping {kept}")
        return EXIT_OK
    require_writable(app.db)
    deleted = prune(app.db, policy, progress=lambda n: print(
        f"\rdeleted {n} finished jobs ...", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    out(f"pruned {deleted} finished jobs; keeping {kept}")
    return EXIT_OK


def _healthcheck(args: argparse.Namespace, app: App, out: Out) -> int:
    require_writable(app.db)
    _require_schema(app)
    out("ok: database reachable, schema up to date")
    return EXIT_OK


def _queue(args: argparse.Namespace, app: App, out: Out) -> int:
    name = args.name
    changes = [(limit_name, value) for limit_name, value in (
        ("concurrency", args.concurrency), ("per_key_concurrency", args.per_key_concurrency),
        ("rate_limit", args.rate_limit)) if value is not None]
    for limit_name, value in changes:
        if value != "none":
            _check_limit_flag(limit_name, value)
    if changes or args.reset or args.pause or args.resume:
        require_writable(app.db)
    if args.reset:
        app.db.run(store.reset_queue_limits(queue=name))
    for limit_name, value in changes:
        app.db.run(store.set_queue_limit(queue=name, limit_name=limit_name,
                                         limit_value=None if value == "none" else value))
    if args.pause:
        app.db.run(store.pause_queue(queue=name))
    if args.resume:
        app.db.run(store.resume_queue(queue=name))
    limits = app.db.run(store.get_queue_limits(queue=name))
    if limits is None:
        paused = app.db.run(store.queue_is_paused(queue=name))
        out(f"queue {printable(name)}: no limits{', paused' if paused else ''}")
        return EXIT_OK
    shown = [f"{key}={limits[key]}" for key in (
        "concurrency", "per_key_concurrency", "rate_limit", "running", "started_in_window",
        "paused", "set_by") if limits[key] is not None]
    out(f"queue {printable(name)}: {' '.join(shown)}")
    return EXIT_OK


def _check_limit_flag(limit_name: str, value: str) -> None:
    """The same rules as App.queue(), so a bad value is one line and exit 2, not SQL."""
    try:
        if limit_name == "rate_limit":
            parse_rate_limit(value)
        else:
            check_limit(int(value) if value.strip().isdigit() else value, limit_name)
    except InvalidLimit as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc


def _schedules(args: argparse.Namespace, app: App, out: Out) -> int:
    from pgqueue.periodic import admin

    schedule_id = args.pause or args.resume
    if schedule_id:
        require_writable(app.db)
        change = admin.pause_schedule if args.pause else admin.resume_schedule
        if not change(app, schedule_id):
            raise CommandError(f"no schedule with id {schedule_id!r}", EXIT_NOT_FOUND)
        out(f"schedule {schedule_id} {'paused' if args.pause else 'resumed'}")
        return EXIT_OK
    schedules = admin.list_schedules(app)
    if args.json:
        out(to_json([{**_fields(s), "state": s.state, "timing": s.timing} for s in schedules]))
        return EXIT_OK
    table(out, ("id", "task", "timing", "state", "next_tick", "last_tick", "last_job",
                "skipped", "overlap"),
          [(s.id, s.task_name, s.timing, s.state, timestamp(s.next_tick_at),
            timestamp(s.last_tick_at), s.last_job_id or "", s.skipped_ticks,
            "yes" if s.overlap else f"no ({s.overlap_skipped_ticks} skipped)")
           for s in schedules])
    return EXIT_OK


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def _top(args: argparse.Namespace, app: App, out: Out) -> int:
    from pgqueue.observe.top import run_top

    return run_top(app, interval=args.interval, once=args.once)


def _require_schema(app: App) -> None:
    """Refuse a missing or older schema in one line, before a command's own SQL fails on it.
    A role that may not read pgqueue.migrations (pgqueue_observer) is not checked here: the
    views it reads say the same when they are missing."""
    try:
        with app.db.connection() as conn:
            pending = pending_migrations(conn)
    except PermissionDenied:
        return
    if pending:
        names = ", ".join(m.name for m in pending)
        total = len(migration_files())
        if len(pending) == total:
            raise SchemaMissing("the pgqueue schema is missing: run `pgqueue migrate`")
        raise SchemaMissing(f"the pgqueue schema is out of date (pending: {names}): "
                            "run `pgqueue migrate`")


_HANDLERS: dict[str, Callable[[argparse.Namespace, App, Out], int]] = {
    "worker": _worker, "migrate": _migrate, "defer": _defer, "jobs": _jobs, "job": _job,
    "workflow": _workflow, "retry": _retry, "cancel": _cancel, "prune": _prune, "stats": _stats,
    "healthcheck": _healthcheck, "schedules": _schedules, "queue": _queue, "top": _top,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        app = load_app(args.app) if args.app else App()
        if args.dsn:
            app.dsn = args.dsn
        if args.pooler:
            app.pooler = args.pooler
        return run_command(args, app)
    except CommandError as exc:
        _fail(str(exc))
        return exc.exit_code
    except ConfigurationError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except PgQueueError as exc:
        _fail(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE


def _fail(message: str) -> None:
    print(f"pgqueue: error: {' '.join(message.split())}", file=sys.stderr)


def entry_point() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped reading (`pgqueue migrate --sql | head`): not an error. Python
        # would report it again when it flushes stdout at exit, so stdout goes to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    sys.stderr.flush()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        os._exit(code)  # a sync task that ignored its timeout must not keep the process alive
    sys.exit(code)
