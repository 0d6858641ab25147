"""pgqueue's per-task options for Django Tasks: `pgqueue_options`, a decorator above ``@task``
(Django's ``Task`` is frozen and has no place for them). The backend reads them when it
registers the Task for workers (attempts, timeout) and at each enqueue (the keys)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgqueue.contrib.django import tasks_api
from pgqueue.errors import ConfigurationError
from pgqueue.validation import check_max_attempts, check_timeout

KeyTemplate = str | Callable[..., str | None] | None
"""A key made from each call's arguments: a ``str.format`` template of the arguments by name
(``"order-{order_id}"``), or a function called with the Task's arguments."""


@dataclass(frozen=True, slots=True)
class PgQueueOptions:
    max_attempts: int | None = None
    timeout: float | None = None
    unique_key: KeyTemplate = None
    lock: KeyTemplate = None
    concurrency_key: KeyTemplate = None

    def keys_for(self, func: Callable[..., Any], takes_context: bool, args: Any,
                 kwargs: Any) -> dict[str, str]:
        """The keys of one call (only those set), for `pgqueue.tasks.Task.using`."""
        keys: dict[str, str] = {}
        for option in ("unique_key", "lock", "concurrency_key"):
            template = getattr(self, option)
            if template is None:
                continue
            key = (template(*args, **kwargs) if callable(template)
                   else template.format(**_arguments_by_name(func, takes_context, args, kwargs)))
            if key is not None:
                keys[option] = key
        return keys


_OPTIONS: dict[Callable[..., Any], PgQueueOptions] = {}


def pgqueue_options(
    *, max_attempts: int | None = None, timeout: float | None = None,
    unique_key: KeyTemplate = None, lock: KeyTemplate = None,
    concurrency_key: KeyTemplate = None,
) -> Callable[[Any], Any]:
    """pgqueue's per-task options for a Django Task, above ``@task``::

        @pgqueue_options(max_attempts=5, timeout=30, unique_key="charge-{order_id}",
                         lock="customer-{customer_id}")
        @task
        def charge(order_id: int, customer_id: int) -> None: ...

    `max_attempts` and `timeout` replace the backend's ``MAX_ATTEMPTS`` and ``TIMEOUT`` for
    this Task. With `unique_key`, enqueueing while a job of the same key is unfinished returns
    that job's result instead of adding one; jobs of one `lock` run one at a time, in enqueue
    order; `concurrency_key` counts against its queue's per-key limit (docs/django.md).
    """
    if max_attempts is not None:
        check_max_attempts(max_attempts)
    options = PgQueueOptions(max_attempts, check_timeout(timeout), unique_key, lock,
                             concurrency_key)
    for name in ("unique_key", "lock", "concurrency_key"):
        value = getattr(options, name)
        if value is not None and not (callable(value) or isinstance(value, str)):
            raise ConfigurationError(f"{name} must be a str.format template or a function, "
                                     f"not {type(value).__name__}")

    def attach(django_task: Any) -> Any:
        if not isinstance(django_task, tasks_api.Task):
            raise ConfigurationError("@pgqueue_options goes above @task (it needs the Task)")
        _OPTIONS[django_task.func] = options  # the backend reads them at the Task's next use
        return django_task

    return attach


def options_of(task: Any) -> PgQueueOptions:
    return _OPTIONS.get(task.func, PgQueueOptions())


def _arguments_by_name(func: Callable[..., Any], takes_context: bool, args: Any,
                       kwargs: Any) -> dict[str, Any]:
    parameters = list(inspect.signature(func).parameters.values())
    if takes_context:
        parameters = parameters[1:]
    bound = inspect.Signature(parameters).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


__all__ = ["KeyTemplate", "PgQueueOptions", "options_of", "pgqueue_options"]
