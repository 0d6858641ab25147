"""The worker's background services (completer, heartbeat, rescue, progress, listener,
retention, scheduler, metrics), registered one way and supervised by one rule.

A service that ends with an unexpected error is logged with its traceback and restarted after
a growing delay (one that returns had nothing to do: metrics without a port, say). A worker
must never go on claiming with a dead service (without its heartbeat, other workers would
rescue its jobs mid-run; without its completer, nothing would be acknowledged): a service that
keeps dying — every restart failing within `HEALTHY_AFTER` seconds, `MAX_QUICK_FAILURES` times
in a row — stops the worker cleanly instead (running jobs drain or are released; the process
exits non-zero, so `--supervise` or the service manager restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pgqueue.logs import log_event

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.db import AsyncDatabase
    from pgqueue.worker.executor import RunningJob
    from pgqueue.worker.options import WorkerOptions
    from pgqueue.worker.process_pool import ProcessPool

logger = logging.getLogger("pgqueue.worker")

HEALTHY_AFTER = 60.0
"""Seconds a restarted service must run before its failure count starts over."""
MAX_QUICK_FAILURES = 5
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0


@dataclass(slots=True)
class WorkerIdentity:
    """The worker as pgqueue.workers knows it; `worker_id` changes when a worker declared
    dead registers again, so services read it each time."""

    name: str
    worker_id: int | None = None
    beating_since: float | None = None
    """Monotonic time since which every heartbeat has landed (None: the last one failed or
    none has yet); rescue waits for a full heartbeat timeout of it."""

    def require_id(self) -> int:
        assert self.worker_id is not None, "the worker registers before its services start"
        return self.worker_id


@dataclass(frozen=True, slots=True)
class WorkerSignals:
    """The events through which services and the claim loop tell each other things."""

    wakes: list[tuple[tuple[str, ...] | None, asyncio.Event]] = field(default_factory=list)
    """Per slot group (pgqueue.worker.slots): its queues (None: every queue) and the event its
    claim loop sleeps on. Set when jobs may be due: NOTIFY for those queues, reconnections."""
    check_aborts: asyncio.Event = field(default_factory=asyncio.Event)
    """An abort was requested for a job of this worker: the heartbeat looks now."""
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    """Set once the worker is registered and (with listen) LISTENing: jobs enqueued from then
    on wake it within milliseconds."""

    def wake_where(self, concerns: Callable[[tuple[str, ...] | None], bool]) -> None:
        """Wake the claim loops whose queues `concerns` says may have new jobs."""
        for queues, event in self.wakes:
            if concerns(queues):
                event.set()

    def wake_all(self) -> None:
        self.wake_where(lambda _queues: True)


class JobsInFlight(Protocol):
    """What the heartbeat and metrics see of the jobs a worker holds."""

    @property
    def running(self) -> Mapping[int, RunningJob]: ...

    def cancel_prefetched(self, job_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """Everything a background service may use of its worker, and nothing more: services
    get this, never the worker itself."""

    app: App
    """Tasks and schedules (the scheduler), where to LISTEN (the listener)."""
    db: AsyncDatabase
    """The worker's own connection, shared by its services (pgqueue.worker.connection)."""
    options: WorkerOptions
    identity: WorkerIdentity
    signals: WorkerSignals
    jobs: JobsInFlight
    observers: list[Any]
    register: Callable[[], Awaitable[None]]
    """Register again (the heartbeat learnt this worker was declared dead)."""
    children: ProcessPool | None = None
    """The worker's child processes (the heartbeat records them; metrics show them)."""


async def wait_for_event(event: asyncio.Event, timeout: float) -> None:
    """Until `event` is set or `timeout` seconds pass, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    run: Callable[[], Awaitable[None]]


class Services:
    def __init__(self, on_give_up: Callable[[str], None]) -> None:
        self._on_give_up = on_give_up
        self._tasks: list[asyncio.Task[None]] = []
        self.failed: str | None = None
        """The service that kept dying and stopped the worker, if one did."""

    def start(self, services: list[Service]) -> None:
        self._tasks.extend(asyncio.create_task(self._supervise(service), name=service.name)
                           for service in services)

    async def stop(self, timeout: float) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    async def _supervise(self, service: Service) -> None:
        quick_failures = 0
        while True:
            started = time.monotonic()
            try:
                await service.run()
                return
            except Exception as exc:
                error = exc
            quick_failures = 1 if time.monotonic() - started >= HEALTHY_AFTER else (
                quick_failures + 1)
            if quick_failures >= MAX_QUICK_FAILURES:
                log_event(logger, logging.CRITICAL, "worker.service_failed",
                          service=service.name, failures=quick_failures,
                          error=f"{type(error).__name__}: {error}"[:300],
                          note="stopping the worker")
                logger.critical("service %s keeps failing", service.name, exc_info=error)
                self.failed = service.name
                self._on_give_up(service.name)
                return
            delay = min(MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2 ** (quick_failures - 1))
            log_event(logger, logging.ERROR, "worker.service_died", service=service.name,
                      restart_in_s=delay, error=f"{type(error).__name__}: {error}"[:300])
            logger.error("service %s died", service.name, exc_info=error)
            await asyncio.sleep(delay)
