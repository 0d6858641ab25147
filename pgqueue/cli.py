"""The `pgqueue` command line. `build_parser` is shared with the Django management command so
both take exactly the same flags; every failure is one line on stderr and a named exit code."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pgqueue import store
from pgqueue.app import App
from pgqueue.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    DuplicateJob,
    EnqueueError,
    InvalidLimit,
    JobNotFound,
    MigrationInProgress,
    PgQueueError,
    ReadOnlyDatabase,
    SchemaMissing,
)
from pgqueue.limits import check_limit, parse_rate_limit
from pgqueue.logs import configure_logging
from pgqueue.maintenance.retention import RetentionPolicy, parse_age, prune
from pgqueue.migrate import apply_migrations, full_sql, migration_files, pending_migrations
from pgqueue.printable import printable
from pgqueue.readonly import require_writable
from pgqueue.validation import MAX_NESTING

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DATABASE_UNAVAILABLE = 3
EXIT_SCHEMA_MISSING = 4
EXIT_BAD_APP = 5
EXIT_NOT_FOUND = 6
EXIT_READ_ONLY = 7


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
        raise CommandError(f"cannot import --app module {module_name!r}: {exc}",
                           EXIT_BAD_APP) from exc
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise CommandError(f"{reference!r} is not a pgqueue.App (got {type(app).__name__})",
                           EXIT_BAD_APP)
    return app


def _csv(value: str) -> list[str]:
    return [part for part in value.split(",") if part]


def _aware_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("--run-at needs a timezone, e.g. 2030-01-01T09:00+00:00")
    return parsed


def build_parser(parser: argparse.ArgumentParser | None = None, *,
                 with_connection_flags: bool = True) -> argparse.ArgumentParser:
    """Add pgqueue's global flags and subcommands to `parser` (a new one if None)."""
    parser = parser or argparse.ArgumentParser(
        prog="pgqueue", description="Postgres-native task queue: run workers, inspect jobs.")
    if with_connection_flags:
        parser.add_argument("--app", default=os.environ.get("PGQUEUE_APP"),
                            help="module:attr of your pgqueue.App (env PGQUEUE_APP)")
        parser.add_argument("--dsn", default=None,
                            help="database DSN (default: the app's, PGQUEUE_DSN, DATABASE_URL)")
        parser.add_argument("--pooler", choices=["none", "transaction"], default=None,
                            help="transaction: the DSN goes through a transaction-mode pooler "
                                 "(PgBouncer, Supavisor, RDS Proxy): no prepared statements, "
                                 "no LISTEN through it (env PGQUEUE_POOLER; docs/deployment.md)")
    parser.add_argument("--log-level", default=os.environ.get("PGQUEUE_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run jobs")
    worker.add_argument("-q", "--queues", type=_csv, default=None,
                        help="comma-separated queues (default: all)")
    worker.add_argument("-c", "--concurrency", type=int, default=1)
    worker.add_argument("--prefetch", type=int, default=0, metavar="N",
                        help="claim N jobs beyond --concurrency, held until a slot frees "
                             "(docs/worker.md)")
    worker.add_argument("-n", "--name", default=None)
    mode = worker.add_mutually_exclusive_group()
    mode.add_argument("--wait", dest="one_shot", action="store_false", default=False,
                      help="keep waiting for jobs (default)")
    mode.add_argument("--one-shot", dest="one_shot", action="store_true",
                      help="run every due job, exit 0 when none is left")
    worker.add_argument("--listen", action=argparse.BooleanOptionalAction, default=True,
                        help="wake on NOTIFY (default) or only poll")
    worker.add_argument("--listen-dsn", default=None,
                        help="direct connection for LISTEN when the DSN goes through a pooler "
                             "(env PGQUEUE_LISTEN_DSN; docs/deployment.md)")
    worker.add_argument("--poll-interval", type=float, default=5.0)
    worker.add_argument("--shutdown-timeout", type=float, default=30.0)
    worker.add_argument("--delete-jobs", choices=["never", "successful", "always"],
                        default="never")
    worker.add_argument("--heartbeat-interval", type=float, default=5.0,
                        help="seconds between heartbeats (and stalled-job rescues)")
    worker.add_argument("--heartbeat-timeout", type=float, default=30.0,
                        help="a worker silent this long is dead and its jobs are rescued")
    worker.add_argument("--supervise", action="store_true",
                        help="run the worker in a child process, restarted if it dies")
    worker.add_argument("--prune-every", type=parse_age, default=3600.0, metavar="AGE",
                        help="how often this worker prunes finished jobs (0: never)")
    _add_retention_flags(worker)
    worker.add_argument("--metrics-port", type=int, default=None,
                        help="serve Prometheus metrics on this port (docs/metrics.md)")
    worker.add_argument("--periodic", action=argparse.BooleanOptionalAction, default=True,
                        help="run the periodic scheduler (default) or not")
    _add_pool_flags(worker)

    migrate = commands.add_parser("migrate", help="create or upgrade the pgqueue schema")
    migrate.add_argument("--sql", action="store_true", help="print the SQL instead of running it")

    defer = commands.add_parser("defer", help="enqueue a job of a registered task")
    defer.add_argument("task")
    defer.add_argument("json_args", nargs="?", default="{}",
                       help='JSON object of keyword arguments or array of positional ones')
    defer.add_argument("--queue", default=None)
    defer.add_argument("--priority", type=int, default=None)
    schedule = defer.add_mutually_exclusive_group()
    schedule.add_argument("--delay", type=float, default=None, help="seconds from now")
    schedule.add_argument("--run-at", type=_aware_datetime, default=None)
    defer.add_argument("--unique-key", default=None,
                       help="at most one queued or running job holds this key: a duplicate "
                            "names the job holding it")
    defer.add_argument("--lock", default=None,
                       help="jobs sharing a lock run one at a time, in enqueue order")
    defer.add_argument("--on-conflict", choices=["return", "raise"], default="return",
                       help="a duplicate of --unique-key: say which job holds the key and exit "
                            "0 (return), or fail with exit 1 (raise); default: %(default)s")

    jobs = commands.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--state", choices=["queued", "waiting", "running", "succeeded", "failed",
                                          "cancelled"])
    jobs.add_argument("--queue")
    jobs.add_argument("--task")
    jobs.add_argument("--limit", type=int, default=50)

    for name, help_text in (("retry", "queue a finished job again"),
                            ("cancel", "cancel a queued job or abort a running one")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("job_id", type=int)

    prune = commands.add_parser("prune", help="delete finished jobs past their retention age")
    _add_retention_flags(prune)

    stats = commands.add_parser("stats", help="per-queue counts and oldest waiting job")
    stats.add_argument("--json", action="store_true")
    top = commands.add_parser("top", help="live view: queues, rates, latency, workers, failures")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    commands.add_parser("healthcheck",
                        help="exit 0 if the database is writable and the schema current")
    schedules = commands.add_parser("schedules", help="list periodic schedules, pause, resume")
    toggle = schedules.add_mutually_exclusive_group()
    toggle.add_argument("--pause", metavar="ID", help="stop schedule ID from firing")
    toggle.add_argument("--resume", metavar="ID", help="let schedule ID fire again")

    queue = commands.add_parser(
        "queue", help="show or change a queue's limits, for every worker at once")
    queue.add_argument("name")
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


def _add_pool_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", choices=["thread", "process"], default="thread",
                        help="run plain-function tasks in -c threads (default) or -c child "
                             "processes, for CPU-bound or leaky tasks (docs/worker.md)")
    parser.add_argument("--max-tasks-per-child", type=int, default=None, metavar="N",
                        help="replace a child process after N jobs")
    parser.add_argument("--max-memory-per-child", type=int, default=None, metavar="MB",
                        help="replace a child process after a job that left it holding MB "
                             "MiB or more")


def _add_retention_flags(parser: argparse.ArgumentParser) -> None:
    defaults = RetentionPolicy()
    for state in ("succeeded", "failed", "cancelled"):
        parser.add_argument(f"--keep-{state}", type=parse_age, metavar="AGE",
                            default=getattr(defaults, f"keep_{state}"),
                            help=f"keep {state} jobs this long (e.g. 12h, 7d, forever)")
    parser.add_argument("--prune-batch-size", type=int, default=defaults.batch_size)


def _retention(args: argparse.Namespace) -> RetentionPolicy:
    return RetentionPolicy(keep_succeeded=args.keep_succeeded, keep_failed=args.keep_failed,
                           keep_cancelled=args.keep_cancelled, batch_size=args.prune_batch_size)


def run_command(args: argparse.Namespace, app: App, out: Callable[[str], None] = print) -> int:
    handler = _HANDLERS[args.command]
    try:
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
    except (EnqueueError, ConfigurationError) as exc:
        raise CommandError(f"{type(exc).__name__}: {exc}", EXIT_USAGE) from exc


def _worker(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
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
        prune_every=args.prune_every or None, retention=_retention(args),
        queues=args.queues, concurrency=args.concurrency, prefetch=args.prefetch, name=args.name,
        one_shot=args.one_shot, listen=args.listen, poll_interval=args.poll_interval,
        metrics_port=args.metrics_port,
        shutdown_timeout=args.shutdown_timeout, delete_jobs=args.delete_jobs,
        periodic=args.periodic, pool=args.pool, max_tasks_per_child=args.max_tasks_per_child,
        max_memory_per_child=args.max_memory_per_child, app_path=getattr(args, "app", None))


def _migrate(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    if args.sql:
        out(full_sql())
        return EXIT_OK
    applied = apply_migrations(app.dsn)
    out(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    return EXIT_OK


def _defer(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
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


def _jobs(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    rows = [(j.id, j.state, j.queue, j.task_name, f"{j.attempts}/{j.max_attempts}",
             _time(j.run_at), _time(j.finished_at),
             f"{j.error.type}: {j.error.message}"[:60] if j.error else "")
            for j in app.list_jobs(state=args.state, queue=args.queue, task_name=args.task,
                                   limit=args.limit)]
    _table(out, ("id", "state", "queue", "task", "attempts", "run_at", "finished_at", "error"),
           rows)
    return EXIT_OK


def _retry(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    try:
        retried = app.retry_job(args.job_id)
    except DuplicateJob as duplicate:  # like a job in the wrong state: not now
        raise CommandError(f"job {args.job_id}: {duplicate}", EXIT_FAILURE) from duplicate
    if not retried:
        app.get_job(args.job_id)  # raises JobNotFound for an unknown id
        raise CommandError(f"job {args.job_id} is not finished; only finished jobs can be "
                           "retried", EXIT_FAILURE)
    out(f"job {args.job_id} queued again")
    return EXIT_OK


def _cancel(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    state = app.cancel_job(args.job_id)
    if state is None:
        job = app.get_job(args.job_id)
        raise CommandError(f"job {args.job_id} is already {job.state}", EXIT_FAILURE)
    out(f"job {args.job_id} cancelled" if state == "cancelled"
        else f"job {args.job_id} is running: abort requested")
    return EXIT_OK


def _stats(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    stats = app.queue_stats()
    if args.json:
        out(json.dumps([asdict(s) for s in stats]))
        return EXIT_OK
    _table(out, ("queue", "queued", "running", "succeeded", "failed", "cancelled",
                 "oldest_waiting_s"),
           [(s.queue, s.queued, s.running, s.succeeded, s.failed, s.cancelled,
             "" if s.oldest_waiting_seconds is None else f"{s.oldest_waiting_seconds:.1f}")
            for s in stats])
    return EXIT_OK


def _prune(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    policy = _retention(args)
    deleted = prune(app.db, policy, progress=lambda n: print(
        f"\rdeleted {n} finished jobs ...", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    out(f"pruned {deleted} finished jobs")
    return EXIT_OK


def _healthcheck(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    require_writable(app.db)
    _require_schema(app)
    out("ok: database reachable, schema up to date")
    return EXIT_OK


def _queue(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    name = args.name
    if args.reset:
        app.db.run(store.reset_queue_limits(queue=name))
    for limit_name, value in (("concurrency", args.concurrency),
                              ("per_key_concurrency", args.per_key_concurrency),
                              ("rate_limit", args.rate_limit)):
        if value is None:
            continue
        if value != "none":
            _check_limit_flag(limit_name, value)
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


def _schedules(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    from pgqueue.periodic import admin

    schedule_id = args.pause or args.resume
    if schedule_id:
        change = admin.pause_schedule if args.pause else admin.resume_schedule
        if not change(app, schedule_id):
            raise CommandError(f"no schedule with id {schedule_id!r}", EXIT_NOT_FOUND)
        out(f"schedule {schedule_id} {'paused' if args.pause else 'resumed'}")
        return EXIT_OK
    _table(out, ("id", "task", "timing", "state", "next_tick", "last_tick", "last_job",
                 "skipped"),
           [(s.id, s.task_name, s.timing, s.state, _time(s.next_tick_at), _time(s.last_tick_at),
             s.last_job_id or "", s.skipped_ticks) for s in admin.list_schedules(app)])
    return EXIT_OK


def _top(args: argparse.Namespace, app: App, out: Callable[[str], None]) -> int:
    from pgqueue.observe.top import run_top

    if not args.interval > 0:
        raise CommandError("--interval must be > 0 seconds", EXIT_USAGE)
    return run_top(app, interval=args.interval, once=args.once)


def _require_schema(app: App) -> None:
    with app.db.connection() as conn:
        pending = pending_migrations(conn)
    if pending:
        names = ", ".join(m.name for m in pending)
        total = len(migration_files())
        if len(pending) == total:
            raise SchemaMissing("the pgqueue schema is missing: run `pgqueue migrate`")
        raise SchemaMissing(f"the pgqueue schema is out of date (pending: {names}): "
                            "run `pgqueue migrate`")
    app.db.run(store.schema_exists())


def _time(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _table(
    out: Callable[[str], None], header: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    cells = [list(map(str, header)), *[list(map(printable, row)) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


_HANDLERS: dict[str, Callable[[argparse.Namespace, App, Callable[[str], None]], int]] = {
    "worker": _worker, "migrate": _migrate, "defer": _defer, "jobs": _jobs, "retry": _retry,
    "cancel": _cancel, "prune": _prune, "stats": _stats, "healthcheck": _healthcheck,
    "schedules": _schedules, "queue": _queue,
    "top": _top,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    configure_logging(args.log_level)
    try:
        app = load_app(args.app) if args.app else App()
        if args.dsn:
            app.dsn = args.dsn
        if args.pooler:
            app.pooler = args.pooler
        code = run_command(args, app)
    except CommandError as exc:
        print(f"pgqueue: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ConfigurationError as exc:
        print(f"pgqueue: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PgQueueError as exc:
        print(f"pgqueue: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return code


def entry_point() -> None:
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        os._exit(code)  # a sync task that ignored its timeout must not keep the process alive
    sys.exit(code)
