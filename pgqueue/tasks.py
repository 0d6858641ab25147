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
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from pgqueue import store
from pgqueue.errors import InvalidArguments
from pgqueue.retry import RetryPolicy
from pgqueue.validation import (
    MAX_QUEUE_NAME,
    check_name,
    check_priority,
    check_schedule,
    encode_arguments,
)

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.db import ExternalConnection

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"
COPY_THRESHOLD = 500
"""defer_many switches from one INSERT … SELECT unnest(…) to COPY at this many jobs."""
COPY_CHUNK = 1000
"""Jobs per chunk of a COPY: the server ingests one chunk while the next is encoded."""


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

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calling the task runs the function here and now, without the queue."""
        return self.func(*args, **kwargs)

    def using(
        self, *, queue: str | None = None, priority: int | None = None,
        delay: float | timedelta | None = None, run_at: datetime | None = None,
    ) -> Task[P, R]:
        """A copy deferring with other options; the original is unchanged."""
        changes: dict[str, Any] = {}
        if queue is not None:
            changes["queue"] = check_name(queue, "queue", MAX_QUEUE_NAME)
        if priority is not None:
            changes["priority"] = check_priority(priority)
        if delay is not None or run_at is not None:
            check_schedule(run_at, delay)
            changes["delay"], changes["run_at"] = delay, run_at
        return dataclasses.replace(self, **changes)

    def _check_signature(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        try:
            call_signature(self.func, self.pass_context).bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"{self.name}: {exc}") from exc

    def _insert_call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> store.Call[int]:
        self._check_signature(args, kwargs)
        args_json, kwargs_json = encode_arguments(
            args, kwargs, max_bytes=self.app.max_payload_bytes
        )
        run_at, delay = check_schedule(self.run_at, self.delay)
        return store.insert_job(
            task_name=self.name, queue=self.queue, args_json=args_json, kwargs_json=kwargs_json,
            priority=self.priority, run_at=run_at, delay=delay,
            max_attempts=self.retry.max_attempts, timeout_seconds=self.timeout,
        )

    def defer(
        self, *args: P.args, connection: ExternalConnection | None = None, **kwargs: P.kwargs
    ) -> int:
        """Enqueue a job and return its id. With `connection=`, the insert runs in that
        connection's current transaction and commits or rolls back with it."""
        return self.app.db.run(self._insert_call(args, kwargs), connection)

    async def defer_async(self, *args: P.args, **kwargs: P.kwargs) -> int:
        return await self.app.db.arun(self._insert_call(args, kwargs))

    def defer_many(
        self, items: Iterable[Sequence[Any] | Mapping[str, Any]], *,
        connection: ExternalConnection | None = None,
    ) -> list[int]:
        """Enqueue many jobs in one statement (one NOTIFY). Each item is a tuple/list of
        positional arguments or a dict of keyword arguments.

        A bad item raises its typed error and no job is enqueued: a large batch is COPYed while
        later chunks are still being encoded, and an error there fails the COPY, rolling back
        its transaction (with `connection=`, the caller's)."""
        batch = items if isinstance(items, list) else list(items)
        if not batch:
            return []
        run_at, delay = check_schedule(self.run_at, self.delay)
        fitting_shapes: set[int | frozenset[str]] = set()
        if len(batch) < COPY_THRESHOLD:
            args_json, kwargs_json = zip(*self._encode_items(batch, fitting_shapes), strict=True)
            return self.app.db.run(store.insert_jobs_many(
                task_name=self.name, queue=self.queue, args_json=args_json,
                kwargs_json=kwargs_json, priority=self.priority, run_at=run_at, delay=delay,
                max_attempts=self.retry.max_attempts, timeout_seconds=self.timeout,
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


@functools.lru_cache(maxsize=1024)
def call_signature(func: Callable[..., Any], pass_context: bool) -> inspect.Signature:
    """The signature callers must match (without the context parameter), computed once."""
    signature = inspect.signature(func)
    if pass_context:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return signature
