"""The `App`: where tasks are registered, jobs deferred and inspected, and workers started."""

from __future__ import annotations

import inspect
import sys
import uuid
import warnings
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, overload

from pgqueue import canvas, store, waiting
from pgqueue.db import (
    Database,
    ExternalConnection,
    Pooler,
    resolve_dsn,
    resolve_listen_dsn,
    resolve_pooler,
)
from pgqueue.errors import ConfigurationError, JobNotFound, PgQueueWarning, UnknownTask
from pgqueue.limits import QueueLimits
from pgqueue.retry import RetryPolicy, coerce_retry
from pgqueue.tasks import DEFAULT_QUEUE, POOLS, Pool, Task
from pgqueue.types import ClaimedJob, Job, JobError, QueueStats
from pgqueue.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_RESULT_MAX_BYTES,
    MAX_QUEUE_NAME,
    MAX_TASK_NAME,
    check_name,
    check_priority,
    check_result_max_bytes,
    check_timeout,
)

if TYPE_CHECKING:
    from pgqueue.worker.services import ServiceContext


def default_task_name(function: Callable[..., Any]) -> str:
    """`module.qualname`, the name workers find the task under when they import its module.

    A function defined in the program being run lives in `__main__`. Run as `python -m
    pkg.mod`, its real module name is known (`__main__.__spec__`) and used. Run as a script
    (`python single.py`), it is not: `__main__.add` would name no task any worker has, so
    this warns, once, at definition (before any job is deferred under that name)."""
    module = function.__module__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name
        else:
            warnings.warn(
                f"task {function.__qualname__!r} is defined in a script run directly, so its "
                f"name is '__main__.{function.__qualname__}', which no worker can import: "
                "define it in a module the worker imports (--app module:app), run the script "
                f"with python -m, or name it: @app.task(name={function.__qualname__!r})",
                PgQueueWarning, stacklevel=_caller_outside_this_module())
    return f"{module}.{function.__qualname__}"


def _caller_outside_this_module() -> int:
    """The stacklevel of the first frame outside this file: the line that declared the task,
    with @app.task or @app.task(...)."""
    level, frame = 2, sys._getframe(2)
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def _check_pool(pool: Pool | None, function: Callable[..., Any], task_name: str) -> Pool | None:
    if pool is not None and pool not in POOLS:
        raise ConfigurationError(f"{task_name}: pool must be 'thread' or 'process', not {pool!r}")
    if pool is not None and inspect.iscoroutinefunction(function):
        raise ConfigurationError(f"{task_name}: an async def task runs on the worker's event "
                                 f"loop; pool={pool!r} applies to plain functions only")
    return pool


class App:
    """One pgqueue application: a DSN, its pools and its registry of tasks.

    `dsn` falls back to the PGQUEUE_DSN, then DATABASE_URL environment variables; nothing
    connects until first use, so an `App` can be created at import time.

    Behind a transaction-mode pooler (PgBouncer, Supavisor, RDS Proxy) pass
    `pooler="transaction"` (or set PGQUEUE_POOLER) and give workers a direct `listen_dsn` (or
    PGQUEUE_LISTEN_DSN) for LISTEN, which cannot work through such a pooler
    (docs/deployment.md).
    """

    def __init__(
        self, dsn: str | None = None, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        pool_size: int = 10, pooler: Pooler | None = None, listen_dsn: str | None = None,
        result_max_bytes: int | None = DEFAULT_RESULT_MAX_BYTES,
    ) -> None:
        self._dsn = dsn
        self._result_max_bytes = check_result_max_bytes(result_max_bytes)
        self._pooler = None if pooler is None else resolve_pooler(pooler)
        self._listen_dsn = listen_dsn
        self.max_payload_bytes = max_payload_bytes
        self.pool_size = pool_size
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.task_hooks: list[Callable[[], AbstractContextManager[object]]] = []
        """Context managers entered in the task's thread around every sync task (Django uses
        one to close stale database connections)."""
        self.worker_services: list[Callable[[ServiceContext], Awaitable[None]]] = []
        """Coroutines every worker of this app runs beside its claim loop, each given the
        worker's `ServiceContext` and supervised like the built-in services (restarted when
        they raise; cancelled at exit)."""
        self.queue_limits: dict[str, QueueLimits] = {}
        """Limits declared with `queue()`, written by every worker at start."""
        self.process_setup: str | None = None
        """`module:function` that each child process of the worker's process pool calls before
        it imports this app (a framework to set up first: "django:setup")."""
        self._db: Database | None = None

    @property
    def dsn(self) -> str:
        return resolve_dsn(self._dsn)

    @dsn.setter
    def dsn(self, value: str) -> None:
        """Point the app at another database (the CLI's --dsn, tests); pools are reopened."""
        self.close()
        self._db = None
        self._dsn = value

    @property
    def result_max_bytes(self) -> int | None:
        """The largest return value (bytes of JSON) a job keeps; a task returning more fails
        that attempt with `ResultTooLarge`, without retrying. None: no cap."""
        return self._result_max_bytes

    @property
    def pooler(self) -> Pooler:
        """"transaction" behind a transaction-mode pooler: no prepared statements, no LISTEN on
        `dsn`. The argument, else PGQUEUE_POOLER, else "none"."""
        return resolve_pooler(self._pooler)

    @pooler.setter
    def pooler(self, value: Pooler) -> None:
        """Set it from the CLI's --pooler; pools are reopened with it."""
        resolve_pooler(value)  # refused before anything is closed
        self.close()
        self._db = None
        self._pooler = value

    @property
    def listen_dsn(self) -> str | None:
        """A direct connection (not through a pooler) for the worker's LISTEN: the argument,
        else PGQUEUE_LISTEN_DSN, else None (LISTEN on `dsn` unless `pooler` forbids it)."""
        return resolve_listen_dsn(self._listen_dsn)

    @listen_dsn.setter
    def listen_dsn(self, value: str | None) -> None:
        self._listen_dsn = value

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.dsn, max_size=self.pool_size, pooler=self.pooler)
        return self._db

    @overload
    def task(self, func: Callable[..., Any], /) -> Task[Any, Any]: ...

    @overload
    def task(
        self, *, name: str | None = ..., queue: str = ..., priority: int = ...,
        retry: RetryPolicy | int | bool | None = ..., timeout: float | None = ...,
        pass_context: bool = ..., on_failure: Callable[[ClaimedJob, JobError], Any] | None = ...,
        pool: Pool | None = ...,
    ) -> Callable[[Callable[..., Any]], Task[Any, Any]]: ...

    def task(
        self, func: Callable[..., Any] | None = None, /, *, name: str | None = None,
        queue: str = DEFAULT_QUEUE, priority: int = 0,
        retry: RetryPolicy | int | bool | None = None, timeout: float | None = None,
        pass_context: bool = False,
        on_failure: Callable[[ClaimedJob, JobError], Any] | None = None, pool: Pool | None = None,
    ) -> Task[Any, Any] | Callable[[Callable[..., Any]], Task[Any, Any]]:
        """Register a function (sync or `async def`) as a task; usable with or without ().

        `on_failure(job, error)` is called once a job of the task has failed for good (sync in
        the worker's threads, or `async def` on its loop), for alerting.
        `pool="process"` runs a plain function in a child process of the worker (CPU-bound or
        leaky code) even when the worker's `--pool` is thread; `pool="thread"` keeps it in a
        thread under `--pool process` (docs/worker.md)."""
        if on_failure is not None and not callable(on_failure):
            raise ConfigurationError(f"on_failure must be callable, not {on_failure!r}")

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            task_name = check_name(name or default_task_name(function), "task name",
                                   MAX_TASK_NAME)
            registered: Task[Any, Any] = Task(
                app=self, func=function, name=task_name,
                queue=check_name(queue, "queue", MAX_QUEUE_NAME),
                priority=check_priority(priority), retry=coerce_retry(retry),
                timeout=check_timeout(timeout), pass_context=pass_context,
                on_failure=on_failure,
                pool=_check_pool(pool, function, task_name),
            )
            existing = self.tasks.get(task_name)
            if existing is not None and existing.func is not function:
                raise ConfigurationError(f"two different functions are registered as {task_name!r}")
            self.tasks[task_name] = registered
            return registered

        return register(func) if func is not None else register

    def queue(
        self, name: str, *, concurrency: int | None = None,
        per_key_concurrency: int | None = None, rate_limit: str | None = None,
    ) -> QueueLimits:
        """Declare a queue's limits, enforced by the database across every worker: at most
        `concurrency` running at once, at most `per_key_concurrency` running per
        `concurrency_key`, at most `rate_limit` starts ("100/m") in any window of the period.
        Workers write them at start; an operator's runtime change (`pgqueue queue NAME ...`,
        `pgqueue.set_queue_limit()`) stands until `pgqueue queue NAME --reset`."""
        limits = QueueLimits(name, concurrency=concurrency,
                             per_key_concurrency=per_key_concurrency, rate_limit=rate_limit)
        self.queue_limits[name] = limits
        return limits

    def periodic(self, **options: Any) -> Callable[[Task[Any, Any]], Task[Any, Any]]:
        """Run a task on a schedule; stack above @app.task (see docs/periodic.md)."""
        from pgqueue.periodic import periodic

        return periodic(self, **options)

    def served_tasks(self) -> tuple[str, ...] | None:
        """The task names a worker of this app claims: its registered tasks, so it never
        spends an attempt on a job it cannot run. None (any task) when the registry resolves
        names it has not seen (a mapping with `__missing__`, like the Django app's, which
        imports a Django Task on first sight)."""
        if hasattr(type(self.tasks), "__missing__"):
            return None
        return tuple(sorted(self.tasks))

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UnknownTask(f"no task named {name!r} is registered (known: {known})") from None

    def defer(
        self, task_name: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
        *, connection: ExternalConnection | None = None, **options: Any,
    ) -> int:
        """Defer a registered task by name (the CLI's `defer`)."""
        task = self.get_task(task_name).using(**options)
        return task.defer(*args, connection=connection, **(kwargs or {}))

    def get_job(self, job_id: int) -> Job:
        job = self.db.run(store.get_job(job_id))
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        return job

    async def aget_job(self, job_id: int) -> Job:
        job = await self.db.arun(store.get_job(job_id))
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        return job

    def list_jobs(
        self, *, state: str | None = None, queue: str | None = None,
        task_name: str | None = None, limit: int = 50,
    ) -> list[Job]:
        return self.db.run(
            store.list_jobs(state=state, queue=queue, task_name=task_name, limit=limit)
        )

    def retry_job(self, job_id: int) -> bool:
        """Queue a finished job again now; False if it is not finished (or does not exist)."""
        return self.db.run(store.retry_job(job_id))

    def cancel_job(self, job_id: int) -> str | None:
        """Cancel a queued job, or ask the worker to abort a running one.

        Returns 'cancelled', 'running' (abort requested) or None (already finished/unknown).
        """
        return self.db.run(store.cancel_job(job_id))

    def wait(self, job_id: int, timeout: float | None = None, *,
             poll_interval: float = waiting.DEFAULT_POLL_INTERVAL) -> Any:
        """Block until the job ends, woken by a NOTIFY from the transaction that records its
        end (`poll_interval`: a fallback read only). Returns its result; raises `JobFailed`,
        `JobCancelled`, `JobNotFound`, or `TimeoutError` after `timeout` seconds."""
        return waiting.wait_for(self, [job_id], timeout, poll_interval)[0]

    async def wait_async(self, job_id: int, timeout: float | None = None, *,
                         poll_interval: float = waiting.DEFAULT_POLL_INTERVAL) -> Any:
        """`wait` without blocking the event loop."""
        return (await waiting.await_for(self, [job_id], timeout, poll_interval))[0]

    def signature(self, task_name: str, *args: Any, **kwargs: Any) -> canvas.Signature:
        """`task.s(...)` by task name: raises `UnknownTask` for a name not registered."""
        return self.get_task(task_name).s(*args, **kwargs)

    def get_workflow(self, workflow_id: uuid.UUID | str) -> list[canvas.WorkflowJob]:
        """The workflow's jobs in enqueue order, with states and results (empty: unknown id,
        or its jobs were pruned)."""
        rows = self.db.run(store.workflow_jobs(canvas.workflow_id_of(workflow_id)))
        return canvas.workflow_jobs(rows)

    def cancel_workflow(self, workflow_id: uuid.UUID | str) -> int:
        """Cancel every unfinished job of the workflow (running ones are asked to abort, and
        their blocked successors are cancelled when they end). Returns how many it touched."""
        return self.db.run(store.cancel_workflow(canvas.workflow_id_of(workflow_id)))

    def queue_stats(self) -> list[QueueStats]:
        return self.db.run(store.queue_stats())

    def migrate(self) -> list[str]:
        from pgqueue.migrate import apply_migrations

        return apply_migrations(self.dsn)

    def run_worker(self, **options: Any) -> int:
        """Run a worker in this thread until stopped (or, with one_shot=True, until idle)."""
        from pgqueue.worker.runner import Worker, WorkerOptions

        return Worker(self, WorkerOptions(**options)).run()

    async def arun_worker(self, **options: Any) -> int:
        from pgqueue.worker.runner import Worker, WorkerOptions

        return await Worker(self, WorkerOptions(**options)).arun()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    async def aclose(self) -> None:
        if self._db is not None:
            await self._db.aclose()
