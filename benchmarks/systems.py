"""The systems under test, as the harness sees them: how to start a worker, how to seed a
backlog straight into the system's own table, how to empty it.

Seeding clones one job enqueued through the system's own API (`template`) with
`INSERT ... SELECT ... generate_series`, so every seeded row is exactly what the system itself
writes, only the argument changes; a million rows take seconds. Celery keeps jobs in Redis, so
its backlog is enqueued through its API instead (and the 1M sizes are skipped).

Statistics are left as a real burst leaves them: each database is analyzed once, right after
its schema is created (empty tables), and never after seeding (the server runs with
autovacuum off, so nothing analyzes behind the harness's back). A queue table goes from empty
to thousands of rows faster than autoanalyze follows; a claim plan that needs fresh statistics
shows here. `ANALYZE_AFTER_SEED` (`run --analyze-after-seed`) restores the old behaviour for
comparison.
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
"""A frozen copy of pgqueue to run instead of the working tree (set by `run --engine`); a
system's own `engine_dir` wins (the `flow` benchmark runs two engines side by side)."""
ANALYZE_AFTER_SEED = False
"""Analyze the seeded tables (fresh statistics: not what a burst leaves; off by default)."""
LISTEN_ONLY_POLL_S = 3600
"""The poll safety net of the latency metrics' workers: far longer than any measurement, so
only a notification can wake a worker that has one (issue 11)."""


def _python_m(python: Path, module: str, engine: str | None) -> list[str]:
    """`python -m module`, through benchmarks.pin when the engine is pinned (project venv)."""
    if engine and python == PROJECT_PYTHON:
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
    latency_flags: list[str] = field(default_factory=list)
    """Worker flags added for the latency metrics (wake-up, steady load): the poll safety net
    pushed past the measurement, so a LISTEN worker is measured on LISTEN alone."""
    woken_by: str = ""
    """What wakes an idle worker in the latency metrics (shown in the report)."""
    engine_dir: str | None = None
    """This system's frozen pgqueue (None: `ENGINE_DIR`, set by `run --engine`)."""

    @property
    def engine(self) -> str | None:
        return self.engine_dir or ENGINE_DIR

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
        if self.engine:
            env["BENCH_ENGINE_DIR"] = self.engine
        if record_dir is not None:
            env["BENCH_RECORD_DIR"] = str(record_dir)
        return env

    def produce(self, *args: object, record_dir: Path | None = None,
                timeout: float = 900) -> dict:
        argv = [*_python_m(self.python, self.peer, self.engine), *map(str, args)]
        return run_json(argv, self.env(record_dir), timeout=timeout)

    def prepare(self, admin_dsn: str) -> None:
        self.dsn = pg.fresh_database(admin_dsn, self.database)
        self.produce("setup")
        self.analyze()

    def analyze(self) -> None:
        """Statistics of every table of its database, as they are now."""
        pg.execute(self.dsn, "ANALYZE")

    def reset(self) -> None:
        if self.reset_sql:
            pg.execute(self.dsn, *self.reset_sql)
        if self.name.startswith("celery"):  # the prefork variants too (benchmarks.pools)
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
        if ANALYZE_AFTER_SEED:
            self.analyze()


def redis_command(*words: str) -> bytes:
    """One command to the benchmark's Redis database (a dozen lines of RESP, no client lib)."""
    def encode(*parts: str) -> bytes:
        return b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(p.encode()), p.encode()) for p in parts)

    def complete(reply: bytes) -> bool:
        # SELECT's "+OK\r\n", then the command's reply: one line, or a bulk string "$N".
        parts = reply.split(b"\r\n", 2)
        if len(parts) < 3:
            return False
        if parts[1].startswith(b"$") and parts[1] != b"$-1":
            return len(parts[2]) >= int(parts[1][1:]) + 2
        return True

    with socket.create_connection(REDIS, timeout=10) as sock:
        sock.sendall(encode("SELECT", str(REDIS_DB)) + encode(*words))
        reply = b""
        while not complete(reply):
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


def _pgqueue_clone(template: str, count: int, start: int, finished: bool,
                   lock_keys: int | None = None) -> list[str]:
    """`lock_keys`: job g takes lock `k<g mod lock_keys>` (an engine with locks, migration
    0009): its insert trigger queues the first job of each lock, the others wait behind it."""
    state = "'succeeded'" if finished else "state"
    lock_column, lock_value = (", lock", f", 'k' || (g % {int(lock_keys)})") if lock_keys \
        else ("", "")
    return [
        f"""INSERT INTO pgqueue.jobs (queue, task_name, args, kwargs, priority, state, run_at,
                                  max_attempts, attempts, enqueued_at, started_at,
                                  finished_at{lock_column})
            SELECT queue, task_name, jsonb_build_array(g), kwargs, priority, {state}, run_at,
                   max_attempts, {1 if finished else 0}, enqueued_at,
                   {'now()' if finished else 'NULL'}, {'now()' if finished else 'NULL'}
                   {lock_value}
            FROM pgqueue.jobs AS t, {_series(start, count)} WHERE t.id = {int(template)}""",
        f"DELETE FROM pgqueue.jobs WHERE id = {int(template)}",
    ]


def pgqueue_clone_locked(template: str, count: int, start: int, lock_keys: int) -> list[str]:
    """Queued jobs g = start.. sharing `lock_keys` locks (see `_pgqueue_clone`)."""
    return _pgqueue_clone(template, count, start, False, lock_keys)


def _raw_clone(template: str, count: int, start: int, finished: bool) -> list[str]:
    return [
        f"""INSERT INTO raw_jobs (args, state, finished_at)
            SELECT jsonb_build_array(g), {"'done', now()" if finished else "'queued', NULL"}
            FROM {_series(start, count)}""",
        f"DELETE FROM raw_jobs WHERE id = {int(template)}",
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
    ]


def _venv_bin(python: Path, script: str) -> str:
    return str(python.parent / script)


LISTEN_ONLY = f"--poll-interval {LISTEN_ONLY_POLL_S}"


def pgqueue_system(name: str, label: str, per_concurrency: list[str], config: str,
                   extra_env: dict[str, str] | None = None,
                   engine_dir: str | None = None) -> System:
    """pgqueue's worker; `per_concurrency` flags get the concurrency as their value;
    `engine_dir`: run that frozen copy of the engine (`pin.engine_snapshot`)."""
    def worker_argv(py: Path, c: int) -> list[str]:
        engine = engine_dir or ENGINE_DIR
        return [*([_venv_bin(py, "pgqueue")] if not engine else _python_m(py, "pgqueue", engine)),
                "--app", "benchmarks.peers.pgqueue_app:app",
                "--log-level", "WARNING", "worker", "--concurrency", str(c),
                *(part for flag in per_concurrency for part in (flag, str(c)))]

    return System(
        name=name, label=label, venv=None, peer="benchmarks.peers.pgqueue_peer",
        worker_argv=worker_argv,
        config=config, engine_dir=engine_dir,
        clone=_pgqueue_clone,
        reset_sql=["TRUNCATE pgqueue.jobs, pgqueue.workers"],
        latency_flags=LISTEN_ONLY.split(),
        woken_by="LISTEN/NOTIFY only (the commit's NOTIFY; the poll safety net set to "
                 f"{LISTEN_ONLY_POLL_S} s)",
        extra_env=extra_env or {},
    )


def all_systems() -> list[System]:
    return [
        pgqueue_system(
            "pgqueue", "pgqueue (async def)", [],
            "`pgqueue worker --concurrency N` on an `async def` no-op task (runs on the event "
            "loop), defaults otherwise (LISTEN/NOTIFY, 5 s poll safety net, jobs kept, no "
            f"prefetch), `--log-level WARNING`. Latency metrics: `{LISTEN_ONLY}`, so only "
            "NOTIFY can wake it."),
        pgqueue_system(
            "pgqueue-def", "pgqueue (def)", [],
            "As pgqueue, on a plain `def` no-op task (what Django users write; run in the "
            "worker's thread pool, one thread per slot).",
            extra_env={"BENCH_TASK": "sync"}),
        pgqueue_system(
            "pgqueue-prefetch", "pgqueue --prefetch N", ["--prefetch"],
            "As pgqueue (`async def`), plus the opt-in `--prefetch N` (N = the concurrency): "
            "up to N more jobs claimed ahead and held by the worker, so the next claim "
            "overlaps running jobs (docs/worker.md). Not a default: held jobs cannot go to "
            "another worker."),
        System(
            name="raw", label="raw psycopg", venv=None, peer="benchmarks.peers.raw",
            worker_argv=lambda py, b: [str(py), "-m", "benchmarks.peers.raw", "worker", str(b)],
            config="One process: claim B rows (`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE "
                   "SKIP LOCKED LIMIT B) RETURNING`), run them, one batched completion UPDATE; "
                   "concurrency N means batch B = N. Enqueue: autocommit INSERT; bulk: COPY.",
            clone=_raw_clone, reset_sql=["TRUNCATE raw_jobs"], wakes_on_notify=False,
            is_reference=True, woken_by="polls every 5 ms",
        ),
        System(
            name="procrastinate", label="procrastinate", venv="procrastinate",
            peer="benchmarks.peers.procrastinate_peer",
            worker_argv=lambda py, c: [
                _venv_bin(py, "procrastinate"), "--app",
                "benchmarks.peers.procrastinate_peer.app", "--log-level", "warning", "worker",
                "--concurrency", str(c)],
            config="`procrastinate worker --concurrency N` on an `async def` task, "
                   "PsycopgConnector, defaults (LISTEN/NOTIFY, 5 s fetch polling interval, "
                   "jobs kept); bulk: `Task.batch_defer`. Latency metrics: "
                   f"`--fetch-job-polling-interval {LISTEN_ONLY_POLL_S}`, so only NOTIFY can "
                   "wake it.",
            latency_flags=["--fetch-job-polling-interval", str(LISTEN_ONLY_POLL_S)],
            woken_by="LISTEN/NOTIFY only (its `listen_notify` default; the fetch polling "
                     f"interval set to {LISTEN_ONLY_POLL_S} s)",
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
            woken_by="its 100 ms poll (no LISTEN)",
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
            woken_by="its 100 ms poll (no LISTEN), plus its 0-100 ms sleep after each task",
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
            woken_by="the Redis broker pushing the message (kombu's BRPOP), no polling",
        ),
    ]
