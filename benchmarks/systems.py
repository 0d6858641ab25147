"""The systems under test, as the harness sees them: how to start a worker, how to seed a
backlog straight into the system's own table, how to empty it.

Seeding clones one job enqueued through the system's own API (`template`) with
`INSERT ... SELECT ... generate_series`, so every seeded row is exactly what the system itself
writes, only the argument changes; a million rows take seconds. Celery keeps jobs in Redis, so
its backlog is enqueued through its API instead (and the 1M sizes are skipped).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import envs, pg
from benchmarks.procs import ROOT, run_json

PROJECT_PYTHON = Path(sys.executable)
REDIS = ("127.0.0.1", 6379)
REDIS_DB = 13
ENGINE_DIR: str | None = None
"""A frozen copy of pgqueue to run instead of the working tree (set by `run --engine`)."""


def _python_m(python: Path, module: str) -> list[str]:
    """`python -m module`, through benchmarks.pin when the engine is pinned (project venv)."""
    if ENGINE_DIR and python == PROJECT_PYTHON:
        return [str(python), "-m", "benchmarks.pin", module]
    return [str(python), "-m", module]


@dataclass
class System:
    name: str
    label: str
    venv: str | None
    """Name of its venv under benchmarks/.cache (None: the project venv)."""
    peer: str
    """Module of its producer commands."""
    worker_argv: Callable[[Path, int], list[str]]
    config: str
    """What was chosen and why, shown in the report."""
    clone: Callable[[str, int, int, bool], list[str]] | None = None
    reset_sql: list[str] = field(default_factory=list)
    max_concurrency: int | None = None
    """Largest concurrency a single worker process supports (None: any)."""
    wakes_on_notify: bool = True
    backlog_max: int | None = None
    """Largest backlog seeded for the scaling metric (slow peers: the 1M rows take minutes)."""
    seed_max: int | None = None
    """Cap on jobs seeded for a throughput run, for a system seeded through its API that
    cannot run more than this within the time cap anyway."""
    extra_env: dict[str, str] = field(default_factory=dict)
    dsn: str = ""
    is_reference: bool = False

    @property
    def python(self) -> Path:
        return envs.python_for(self.venv) if self.venv else PROJECT_PYTHON

    @property
    def database(self) -> str:
        # The pid keeps concurrent runs (a CI check beside a full run) out of each other's way.
        return f"pgqbench_{self.name.replace('-', '_')}_{os.getpid()}"

    def env(self, record_dir: Path | None = None, concurrency: int = 1) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PGQUEUE_", "DJANGO_"))}
        env.update({"BENCH_DSN": self.dsn, "PGQUEUE_DSN": self.dsn,
                    "PYTHONPATH": str(ROOT), "BENCH_CONCURRENCY": str(concurrency),
                    "PYTHONDONTWRITEBYTECODE": "1"})
        env.update(self.extra_env)
        if ENGINE_DIR:
            env["BENCH_ENGINE_DIR"] = ENGINE_DIR
        if record_dir is not None:
            env["BENCH_RECORD_DIR"] = str(record_dir)
        return env

    def produce(self, *args: object, record_dir: Path | None = None,
                timeout: float = 900) -> dict:
        argv = [*_python_m(self.python, self.peer), *map(str, args)]
        return run_json(argv, self.env(record_dir), timeout=timeout)

    def prepare(self, admin_dsn: str) -> None:
        self.dsn = pg.fresh_database(admin_dsn, self.database)
        self.produce("setup")

    def reset(self) -> None:
        if self.reset_sql:
            pg.execute(self.dsn, *self.reset_sql)
        if self.name == "celery":
            redis_command("FLUSHDB")

    def seed(self, count: int, start: int = 0, finished: bool = False) -> None:
        """Put `count` jobs (indices start..) in the queue, or `finished` ones in the table."""
        if count <= 0:
            return
        if self.clone is None:
            if finished:
                return
            self.produce("seed", count, start)
            return
        template = self.produce("template").get("id")
        pg.execute(self.dsn, *self.clone(str(template), count, start, finished))


def redis_command(*words: str) -> bytes:
    """One command to the benchmark's Redis database (a dozen lines of RESP, no client lib)."""
    def encode(*parts: str) -> bytes:
        return b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(p.encode()), p.encode()) for p in parts)

    with socket.create_connection(REDIS, timeout=10) as sock:
        sock.sendall(encode("SELECT", str(REDIS_DB)) + encode(*words))
        reply = b""
        while reply.count(b"\r\n") < 2:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


def redis_running() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1):
            return True
    except OSError:
        return False


def _series(start: int, count: int) -> str:
    return f"generate_series({start}, {start + count - 1}) AS g"


def _pgqueue_clone(template: str, count: int, start: int, finished: bool) -> list[str]:
    state = "'succeeded'" if finished else "state"
    return [
        f"""INSERT INTO pgqueue.jobs (queue, task_name, args, kwargs, priority, state, run_at,
                                  max_attempts, attempts, enqueued_at, started_at, finished_at)
            SELECT queue, task_name, jsonb_build_array(g), kwargs, priority, {state}, run_at,
                   max_attempts, {1 if finished else 0}, enqueued_at,
                   {'now()' if finished else 'NULL'}, {'now()' if finished else 'NULL'}
            FROM pgqueue.jobs AS t, {_series(start, count)} WHERE t.id = {int(template)}""",
        f"DELETE FROM pgqueue.jobs WHERE id = {int(template)}",
        "ANALYZE pgqueue.jobs",
    ]


def _raw_clone(template: str, count: int, start: int, finished: bool) -> list[str]:
    return [
        f"""INSERT INTO raw_jobs (args, state, finished_at)
            SELECT jsonb_build_array(g), {"'done', now()" if finished else "'queued', NULL"}
            FROM {_series(start, count)}""",
        f"DELETE FROM raw_jobs WHERE id = {int(template)}",
        "ANALYZE raw_jobs",
    ]


def _procrastinate_clone(template: str, count: int, start: int, finished: bool) -> list[str]:
    status = "'succeeded'" if finished else "status"
    return [
        f"""INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args, status,
                                            scheduled_at, attempts)
            SELECT queue_name, task_name, priority, jsonb_build_object('i', g), {status},
                   scheduled_at, {1 if finished else 0}
            FROM procrastinate_jobs AS t, {_series(start, count)} WHERE t.id = {int(template)}""",
        f"DELETE FROM procrastinate_jobs WHERE id = {int(template)}",
        "ANALYZE procrastinate_jobs",
        "ANALYZE procrastinate_events",
    ]


def _djtasks_clone(template: str, count: int, start: int, finished: bool) -> list[str]:
    status = "'SUCCESSFUL'" if finished else "status"
    stamps = "now(), now()" if finished else "NULL, NULL"
    return [
        f"""INSERT INTO django_tasks_database_dbtaskresult
                (id, status, enqueued_at, started_at, finished_at, args_kwargs, priority,
                 task_path, worker_ids, queue_name, backend_name, run_after, return_value,
                 exception_class_path, traceback)
            SELECT gen_random_uuid(), {status}, enqueued_at, {stamps},
                   jsonb_build_object('args', jsonb_build_array(g), 'kwargs', '{{}}'::jsonb),
                   priority, task_path, worker_ids, queue_name, backend_name, run_after,
                   return_value, exception_class_path, traceback
            FROM django_tasks_database_dbtaskresult AS t, {_series(start, count)}
            WHERE t.id = '{template}'::uuid""",
        f"DELETE FROM django_tasks_database_dbtaskresult WHERE id = '{template}'::uuid",
        "ANALYZE django_tasks_database_dbtaskresult",
    ]


def _bgtasks_clone(template: str, count: int, start: int, finished: bool) -> list[str]:
    table = "background_task_completedtask" if finished else "background_task"
    return [
        f"""INSERT INTO {table} (task_name, task_params, task_hash, verbose_name, priority,
                                 run_at, repeat, repeat_until, queue, attempts, failed_at,
                                 last_error, locked_by, locked_at, creator_content_type_id,
                                 creator_object_id)
            SELECT task_name, format('[[%s], {{}}]', g), left(md5(task_name || g), 40),
                   verbose_name, priority, run_at, repeat, repeat_until, queue,
                   {1 if finished else 0}, failed_at, last_error, NULL, NULL,
                   creator_content_type_id, creator_object_id
            FROM background_task AS t, {_series(start, count)} WHERE t.id = {int(template)}""",
        f"DELETE FROM background_task WHERE id = {int(template)}",
        f"ANALYZE {table}",
    ]


def _venv_bin(python: Path, script: str) -> str:
    return str(python.parent / script)


def _pgqueue_system(name: str, label: str, per_concurrency: list[str], config: str) -> System:
    """pgqueue's worker; `per_concurrency` flags get the concurrency as their value."""
    return System(
        name=name, label=label, venv=None, peer="benchmarks.peers.pgqueue_peer",
        worker_argv=lambda py, c: [
            *([_venv_bin(py, "pgqueue")] if not ENGINE_DIR else _python_m(py, "pgqueue")),
            "--app", "benchmarks.peers.pgqueue_app:app",
            "--log-level", "WARNING", "worker", "--concurrency", str(c),
            *(part for flag in per_concurrency for part in (flag, str(c)))],
        config=config,
        clone=_pgqueue_clone,
        reset_sql=["TRUNCATE pgqueue.jobs, pgqueue.workers"],
    )


def all_systems() -> list[System]:
    return [
        _pgqueue_system(
            "pgqueue", "pgqueue", [],
            "`pgqueue worker --concurrency N` on an `async def` no-op task, defaults otherwise "
            "(LISTEN/NOTIFY, jobs kept, no prefetch), `--log-level WARNING`."),
        _pgqueue_system(
            "pgqueue-prefetch", "pgqueue --prefetch N", ["--prefetch"],
            "As pgqueue, plus the opt-in `--prefetch N` (N = the concurrency): up to N more "
            "jobs claimed ahead and held by the worker, so the next claim overlaps running "
            "jobs (docs/worker.md). Not a default: held jobs cannot go to another worker."),
        System(
            name="raw", label="raw psycopg", venv=None, peer="benchmarks.peers.raw",
            worker_argv=lambda py, b: [str(py), "-m", "benchmarks.peers.raw", "worker", str(b)],
            config="One process: claim B rows (`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE "
                   "SKIP LOCKED LIMIT B) RETURNING`), run them, one batched completion UPDATE; "
                   "concurrency N means batch B = N. Enqueue: autocommit INSERT; bulk: COPY.",
            clone=_raw_clone, reset_sql=["TRUNCATE raw_jobs"], wakes_on_notify=False,
            is_reference=True,
        ),
        System(
            name="procrastinate", label="procrastinate", venv="procrastinate",
            peer="benchmarks.peers.procrastinate_peer",
            worker_argv=lambda py, c: [
                _venv_bin(py, "procrastinate"), "--app",
                "benchmarks.peers.procrastinate_peer.app", "--log-level", "warning", "worker",
                "--concurrency", str(c)],
            config="`procrastinate worker --concurrency N` on an `async def` task, "
                   "PsycopgConnector, defaults (LISTEN/NOTIFY, jobs kept); bulk: "
                   "`Task.batch_defer`.",
            clone=_procrastinate_clone,
            reset_sql=["TRUNCATE procrastinate_jobs, procrastinate_events, "
                       "procrastinate_periodic_defers, procrastinate_workers CASCADE"],
        ),
        System(
            name="django-tasks-db", label="django-tasks-db", venv="django_tasks_db",
            peer="benchmarks.peers.djtasks_peer",
            worker_argv=lambda py, c: [
                str(py), "-m", "django", "db_worker", "--interval", "0.1",
                "--no-startup-delay", "--no-reload", "--verbosity", "0"],
            config="`manage.py db_worker --interval 0.1 --no-startup-delay` (polls every "
                   "100 ms instead of the default 1 s; runs one task at a time, no concurrency "
                   "option); persistent connections (CONN_MAX_AGE=None); bulk: enqueue calls "
                   "in one `transaction.atomic()` (no bulk API).",
            clone=_djtasks_clone, reset_sql=["TRUNCATE django_tasks_database_dbtaskresult"],
            max_concurrency=1, wakes_on_notify=False, backlog_max=100_000,
            extra_env={"DJANGO_SETTINGS_MODULE": "benchmarks.peers.django_settings",
                       "BENCH_DJANGO_APP": "tasks_db"},
        ),
        System(
            name="background-tasks", label="django-background-tasks", venv="background_tasks",
            peer="benchmarks.peers.bgtasks_peer",
            worker_argv=lambda py, c: [str(py), "-m", "django", "process_tasks", "--sleep",
                                       "0.1"],
            config="`manage.py process_tasks --sleep 0.1` (100 ms idle poll instead of 5 s); "
                   "concurrency N: BACKGROUND_TASK_RUN_ASYNC with BACKGROUND_TASK_ASYNC_THREADS"
                   "=N; persistent connections; bulk: calls in one `transaction.atomic()`.",
            clone=_bgtasks_clone,
            reset_sql=["TRUNCATE background_task, background_task_completedtask"],
            wakes_on_notify=False, backlog_max=100_000,
            extra_env={"DJANGO_SETTINGS_MODULE": "benchmarks.peers.django_settings",
                       "BENCH_DJANGO_APP": "background_task"},
        ),
        System(
            name="celery", label="Celery + Redis", venv="celery",
            peer="benchmarks.peers.celery_peer",
            worker_argv=lambda py, c: [
                _venv_bin(py, "celery"), "-A", "benchmarks.peers.celery_peer", "worker",
                "--pool", "solo" if c == 1 else "threads", "--concurrency", str(c),
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel", "WARNING"],
            config="`celery worker --pool threads --concurrency N` (`solo` for N=1) "
                   "`--without-gossip --without-mingle --without-heartbeat`, "
                   "task_ignore_result, prefetch multiplier 32, Redis broker (db 13); bulk: "
                   "`apply_async` through one acquired producer.",
            backlog_max=100_000, seed_max=8000,
        ),
    ]
