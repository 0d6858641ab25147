"""The worker's background services (completer, heartbeat, rescue, listener, retention,
scheduler, metrics), registered one way and supervised by one rule.

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
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pgqueue.logs import log_event

logger = logging.getLogger("pgqueue.worker")

HEALTHY_AFTER = 60.0
"""Seconds a restarted service must run before its failure count starts over."""
MAX_QUICK_FAILURES = 5
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0


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
