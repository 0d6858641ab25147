"""Tasks: the decorator's product, configured copies (`using`), and deferring jobs.

A `Task` is immutable; `using()` returns a modified copy, so a configured task can be shared
between threads and reused.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar

from pgqueue import store
from pgqueue.errors import ConfigurationError, DatabaseUnavailable, DuplicateJob, InvalidArguments
from pgqueue.retry import RetryPolicy, coerce_retry
from pgqueue.types import ClaimedJob, JobError
from pgqueue.validation import (
    MAX_QUEUE_NAME,
    MAX_UNIQUE_KEY,
    check_name,
    check_priority,
    check_schedule,
    check_timeout,
    encode_arguments,
)

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.canvas import Signature
    from pgqueue.db import Call, ExternalConnection

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"
COPY_THRESHOLD = 500
"""defer_many switches from one INSERT … SELECT unnest(…) to COPY at this many jobs."""
COPY_CHUNK = 1000
"""Jobs per chunk of a COPY: the server ingests one chunk while the next is encoded."""
KEY_LOOKUPS = 3
"""Times a unique enqueue asks again when the key's holder finished between the conflict and
the lookup (the key is then free, and the next try inserts)."""
OnConflict = Literal["return", "raise"]
OnParentFailure = Literal["cancel", "run"]
Pool = Literal["thread", "process"]
"""Where a plain-function task runs: a thread of the worker, or a child process of it."""
POOLS: tuple[Pool, ...] = ("thread", "process")


@dataclasses.dataclass(frozen=True, slots=True)
class Task(Generic[P, R]):
    app: App
    func: Callable[..., Any]
    name: str
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    timeout: float | None = None
    pass_context: bool = False
    run_at: datetime | None = None
    delay: float | timedelta | None = None
    unique_key: str | None = None
    """At most one unfinished job holds it (a unique index): see `using`."""
    on_conflict: OnConflict = "return"
    lock: str | None = None
    """Jobs sharing it run one at a time, in enqueue order: see `using`."""
    concurrency_key: str | None = None
    """Counted against the queue's per_key_concurrency (App.queue)."""
    depends_on: tuple[int, ...] = ()
    """Parent job ids: the job runs once every one has succeeded (see `using`)."""
    on_parent_failure: OnParentFailure = "cancel"
    on_failure: Callable[[ClaimedJob, JobError], Any] | None = None
    """Called once a job of this task has failed for good (after its last attempt, or
    `pgqueue.Fail`), with the job and its error: pgqueue/worker/failure_hooks.py."""
    pool: Pool | None = None
    """"process": run in a child process of the worker even when its `--pool` is thread;
    "thread": in a thread even under `--pool process`; None: the worker's pool decides."""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calling the task runs the function here and now, without the queue."""
        return self.func(*args, **kwargs)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature: this task with these arguments, as a step of a workflow (`chain`,
        `group`, `chord`). Arguments that do not survive JSON raise `InvalidArguments` here."""
        from pgqueue.canvas import Signature

        return Signature(self, args, kwargs)

    def using(
        self, *, queue: str | None = None, priority: int | None = None,
        delay: float | timedelta | None = None, run_at: datetime | None = None,
        unique_key: str | None = None, on_conflict: OnConflict | None = None,
        lock: str | None = None, concurrency_key: str | None = None,
        retry: int | bool | None = None, timeout: float | None = None,
        depends_on: Iterable[int] | None = None, on_parent_failure: OnParentFailure | None = None,
    ) -> Task[P, R]:
        """A copy deferring with other options; the original is unchanged.

        `unique_key`: while a job with this key is unfinished (queued, waiting or running),
        `defer` returns that job's id instead of adding another (`on_conflict="raise"`: raises
        `DuplicateJob` carrying it). Once it has finished, the key is free for a new job.

        `lock`: jobs sharing a lock never run at the same time, on any worker, and start in
        enqueue order; a job whose lock is held waits (state `waiting`) until the jobs ahead
        of it have finished. Other jobs are not held up.

        `concurrency_key`: at most the queue's `per_key_concurrency` jobs with the same key run
        at once (`App.queue`), on all workers together.

        `retry` (a number of retries, or a bool) and `timeout` (seconds) hold for the jobs
        this copy defers: both are stored with each job. The backoff and the exceptions worth
        a retry stay the task's own (a callable cannot be stored with a job).

        `depends_on`: ids of jobs (parents) that must succeed first; the job is `blocked` until
        then, and queued in the transaction that records the last parent's success. A parent
        ending failed or cancelled cancels it (reason in its error), unless
        `on_parent_failure="run"`. Unknown ids raise `UnknownParent`, nothing written. A job
        can only depend on jobs that exist before it, so dependencies never form a cycle."""
        changes: dict[str, Any] = {}
        if depends_on is not None:
            changes["depends_on"] = _parent_ids(depends_on)
        if on_parent_failure is not None:
            if on_parent_failure not in ("cancel", "run"):
                raise ConfigurationError(f"on_parent_failure must be 'cancel' or 'run', "
                                         f"not {on_parent_failure!r}")
            changes["on_parent_failure"] = on_parent_failure
        if retry is not None:
            if isinstance(retry, RetryPolicy):
                raise ConfigurationError(
                    "using(retry=...) takes a number of retries or a bool: a RetryPolicy's "
                    "backoff and exception filters are declared on the task (@app.task(retry=))")
            changes["retry"] = dataclasses.replace(
                self.retry, max_attempts=coerce_retry(retry).max_attempts)
        if timeout is not None:
            changes["timeout"] = check_timeout(timeout)
        if concurrency_key is not None:
            changes["concurrency_key"] = check_name(concurrency_key, "concurrency key",
                                                    MAX_UNIQUE_KEY)
        if lock is not None:
            changes["lock"] = check_name(lock, "lock", MAX_UNIQUE_KEY)
        if unique_key is not None:
            changes["unique_key"] = check_name(unique_key, "unique key", MAX_UNIQUE_KEY)
        if on_conflict is not None:
            if on_conflict not in ("return", "raise"):
                raise ConfigurationError(
                    f"on_conflict must be 'return' or 'raise', not {on_conflict!r}")
            changes["on_conflict"] = on_conflict
        if queue is not None:
            changes["queue"] = check_name(queue, "queue", MAX_QUEUE_NAME)
        if priority is not None:
            changes["priority"] = check_priority(priority)
        if delay is not None or run_at is not None:
            check_schedule(run_at, delay)
            changes["delay"], changes["run_at"] = delay, run_at
        configured = dataclasses.replace(self, **changes)
        if configured.depends_on and configured.lock:
            raise ConfigurationError("a job cannot both depend on other jobs and take a lock")
        return configured

    def _check_signature(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        try:
            call_signature(self.func, self.pass_context).bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"{self.name}: {exc}") from exc

    def _insert_fields(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        self._check_signature(args, kwargs)
        args_json, kwargs_json = encode_arguments(
            args, kwargs, max_bytes=self.app.max_payload_bytes
        )
        run_at, delay = check_schedule(self.run_at, self.delay)
        return {"task_name": self.name, "queue": self.queue, "args_json": args_json,
                "kwargs_json": kwargs_json, "priority": self.priority, "run_at": run_at,
                "delay": delay, "max_attempts": self.retry.max_attempts,
                "timeout_seconds": self.timeout, "lock": self.lock,
                "concurrency_key": self.concurrency_key}

    def defer(
        self, *args: P.args, connection: ExternalConnection | None = None, **kwargs: P.kwargs
    ) -> int:
        """Enqueue a job and return its id. With `connection=`, the insert runs in that
        connection's current transaction and commits or rolls back with it."""
        fields = self._insert_fields(args, kwargs)
        if self.depends_on:
            return self.app.db.run(self._dependent_insert(fields), connection)
        if self.unique_key is None:
            return self.app.db.run(store.insert_job(**fields), connection)
        call = store.insert_unique_job(**fields, unique_key=self.unique_key)
        for _ in range(KEY_LOOKUPS):
            found = self.app.db.run(call, connection)
            if found is not None:
                return self._unique_outcome(*found)
        raise self._key_kept_changing_hands()

    async def defer_async(self, *args: P.args, **kwargs: P.kwargs) -> int:
        fields = self._insert_fields(args, kwargs)
        if self.depends_on:
            return await self.app.db.arun(self._dependent_insert(fields))
        if self.unique_key is None:
            return await self.app.db.arun(store.insert_job(**fields))
        call = store.insert_unique_job(**fields, unique_key=self.unique_key)
        for _ in range(KEY_LOOKUPS):
            found = await self.app.db.arun(call)
            if found is not None:
                return self._unique_outcome(*found)
        raise self._key_kept_changing_hands()

    def _dependent_insert(self, fields: dict[str, Any]) -> Call[int]:
        fields.pop("lock")
        return store.insert_dependent_job(**fields, parent_ids=self.depends_on,
                                          on_parent_failure=self.on_parent_failure,
                                          unique_key=self.unique_key)

    def _unique_outcome(self, job_id: int, created: bool) -> int:
        if not created and self.on_conflict == "raise":
            raise DuplicateJob(f"job {job_id} already holds unique key {self.unique_key!r}",
                               job_id=job_id)
        return job_id

    def _key_kept_changing_hands(self) -> DatabaseUnavailable:
        return DatabaseUnavailable(f"unique key {self.unique_key!r} changed hands "
                                   f"{KEY_LOOKUPS} times during one enqueue; try again")

    def defer_many(
        self, items: Iterable[Sequence[Any] | Mapping[str, Any]], *,
        connection: ExternalConnection | None = None,
        unique_keys: Sequence[str] | None = None,
    ) -> list[int]:
        """Enqueue many jobs in one statement (one NOTIFY). Each item is a tuple/list of
        positional arguments or a dict of keyword arguments.

        A bad item raises its typed error and no job is enqueued: a large batch is COPYed while
        later chunks are still being encoded, and an error there fails the COPY, rolling back
        its transaction (with `connection=`, the caller's).

        `unique_keys` (one per item) makes each job unique as `using(unique_key=...)` does: an
        item whose key a queued or running job holds gets that job's id (never raises)."""
        if self.depends_on:
            raise ConfigurationError("defer_many does not take depends_on: defer each "
                                     "dependent job on its own")
        batch = items if isinstance(items, list) else list(items)
        if not batch:
            return []
        run_at, delay = check_schedule(self.run_at, self.delay)
        fitting_shapes: set[int | frozenset[str]] = set()
        if unique_keys is not None:
            return self._defer_many_unique(batch, unique_keys, run_at, delay, connection)
        if len(batch) < COPY_THRESHOLD or self.lock or self.concurrency_key:  # not in COPY
            args_json, kwargs_json = zip(*self._encode_items(batch, fitting_shapes), strict=True)
            return self.app.db.run(store.insert_jobs_many(
                task_name=self.name, queue=self.queue, args_json=args_json,
                kwargs_json=kwargs_json, priority=self.priority, run_at=run_at, delay=delay,
                max_attempts=self.retry.max_attempts, timeout_seconds=self.timeout,
                lock=self.lock, concurrency_key=self.concurrency_key,
            ), connection)
        first = self._encode_items(batch[:COPY_CHUNK], fitting_shapes)  # fail before any SQL
        rest = (self._encode_items(batch[start:start + COPY_CHUNK], fitting_shapes)
                for start in range(COPY_CHUNK, len(batch), COPY_CHUNK))
        ids, due_at = self.app.db.run(
            store.reserve_job_ids(count=len(batch), run_at=run_at, delay=delay), connection)
        self.app.db.copy(store.copy_jobs(
            ids=ids, run_at=None if run_at is None and not delay else due_at,
            task_name=self.name, queue=self.queue, arguments=itertools.chain((first,), rest),
            priority=self.priority, max_attempts=self.retry.max_attempts,
            timeout_seconds=self.timeout,
        ), connection)
        return ids

    def _defer_many_unique(
        self, batch: list[Sequence[Any] | Mapping[str, Any]], unique_keys: Sequence[str],
        run_at: datetime | None, delay: float, connection: ExternalConnection | None,
    ) -> list[int]:
        if isinstance(unique_keys, str) or len(unique_keys) != len(batch):
            raise InvalidArguments(f"{self.name}: defer_many needs one unique key per item "
                                   f"({len(batch)} items)")
        keys = [check_name(key, "unique key", MAX_UNIQUE_KEY) for key in unique_keys]
        encoded = self._encode_items(batch, set())
        ids: list[int | None] = [None] * len(batch)
        for _ in range(KEY_LOOKUPS):
            missing = [index for index, job_id in enumerate(ids) if job_id is None]
            if not missing:
                break
            found = self.app.db.run(store.insert_unique_jobs_many(
                task_name=self.name, queue=self.queue,
                args_json=[encoded[i][0] for i in missing],
                kwargs_json=[encoded[i][1] for i in missing],
                unique_keys=[keys[i] for i in missing], priority=self.priority, run_at=run_at,
                delay=delay, max_attempts=self.retry.max_attempts,
                timeout_seconds=self.timeout, lock=self.lock,
                concurrency_key=self.concurrency_key,
            ), connection)
            for index, job_id in zip(missing, found, strict=True):
                ids[index] = job_id
        if None in ids:
            raise DatabaseUnavailable(f"{self.name}: unique keys changed hands {KEY_LOOKUPS} "
                                      "times during one defer_many; try again")
        return [job_id for job_id in ids if job_id is not None]

    def _encode_items(
        self, items: Sequence[Sequence[Any] | Mapping[str, Any]],
        fitting_shapes: set[int | frozenset[str]],
    ) -> list[tuple[str, str]]:
        """(args JSON, kwargs JSON) of each item, or the first bad item's typed error. The
        signature is checked once per shape (arity, or keyword names) in `fitting_shapes`:
        binding depends on nothing else."""
        max_bytes = self.app.max_payload_bytes
        encoded = []
        for item in items:
            if type(item) is tuple or (isinstance(item, Sequence)
                                       and not isinstance(item, str | bytes)):
                args, kwargs, shape = item, {}, len(item)
            elif isinstance(item, Mapping):
                args, kwargs, shape = (), item, frozenset(item)
            else:
                raise InvalidArguments(
                    f"{self.name}: each item must be a tuple/list of positional arguments or "
                    f"a dict of keyword arguments, not {type(item).__name__}"
                )
            if shape not in fitting_shapes:
                self._check_signature(args, kwargs)
                fitting_shapes.add(shape)
            encoded.append(encode_arguments(args, kwargs, max_bytes=max_bytes))
        return encoded


def _parent_ids(depends_on: Iterable[int]) -> tuple[int, ...]:
    if isinstance(depends_on, int | str | bytes):
        raise ConfigurationError("depends_on takes a list of job ids")
    ids = tuple(depends_on)
    if not ids or not all(type(i) is int and i > 0 for i in ids):
        raise ConfigurationError(f"depends_on must be one or more job ids, not {ids!r}")
    return ids


@functools.lru_cache(maxsize=1024)
def call_signature(func: Callable[..., Any], pass_context: bool) -> inspect.Signature:
    """The signature callers must match (without the context parameter), computed once."""
    signature = inspect.signature(func)
    if pass_context:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return signature
