"""Tasks: the decorator's product, configured copies (`using`), and deferring jobs.

A `Task` is immutable; `using()` returns a modified copy, so a configured task can be shared
between threads and reused.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
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
        positional arguments or a dict of keyword arguments."""
        args_json: list[str] = []
        kwargs_json: list[str] = []
        fitting_shapes: set[tuple[int, frozenset[str]]] = set()
        for item in items:
            args, kwargs = ((), item) if isinstance(item, Mapping) else (item, {})
            if not isinstance(args, Sequence) or isinstance(args, str | bytes):
                raise InvalidArguments(
                    f"{self.name}: each item must be a tuple/list of positional arguments or "
                    f"a dict of keyword arguments, not {type(item).__name__}"
                )
            shape = (len(args), frozenset(kwargs))  # binding depends on nothing else
            if shape not in fitting_shapes:
                self._check_signature(args, kwargs)
                fitting_shapes.add(shape)
            encoded = encode_arguments(args, kwargs, max_bytes=self.app.max_payload_bytes)
            args_json.append(encoded[0])
            kwargs_json.append(encoded[1])
        if not args_json:
            return []
        run_at, delay = check_schedule(self.run_at, self.delay)
        if len(args_json) < COPY_THRESHOLD:
            return self.app.db.run(store.insert_jobs_many(
                task_name=self.name, queue=self.queue, args_json=args_json,
                kwargs_json=kwargs_json, priority=self.priority, run_at=run_at, delay=delay,
                max_attempts=self.retry.max_attempts, timeout_seconds=self.timeout,
            ), connection)
        ids, due_at = self.app.db.run(
            store.reserve_job_ids(count=len(args_json), run_at=run_at, delay=delay), connection)
        self.app.db.copy(store.copy_jobs(
            ids=ids, run_at=due_at, task_name=self.name, queue=self.queue,
            args_json=args_json, kwargs_json=kwargs_json, priority=self.priority,
            max_attempts=self.retry.max_attempts, timeout_seconds=self.timeout,
        ), connection)
        return ids


@functools.lru_cache(maxsize=1024)
def call_signature(func: Callable[..., Any], pass_context: bool) -> inspect.Signature:
    """The signature callers must match (without the context parameter), computed once."""
    signature = inspect.signature(func)
    if pass_context:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return signature
