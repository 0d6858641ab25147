"""The worker process: one asyncio loop that claims jobs in batches up to its free slots, runs
them (async tasks on the loop, sync tasks in threads), and hands outcomes to the completer.

Wake-ups come from LISTEN (milliseconds); a slow poll and the next scheduled job's due time
cover missed notifications. SIGTERM/SIGINT stop claiming and drain; a second signal stops at
once. Either way, jobs that could not finish (and prefetched jobs that never started) are put
back to `queued` without spending an attempt.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from pgqueue import store
from pgqueue.context import JobContext
from pgqueue.db import worker_application_stem
from pgqueue.errors import DatabaseUnavailable, JobAborted
from pgqueue.logs import log_event
from pgqueue.maintenance.rescue import rescue_service
from pgqueue.maintenance.retention import retention_service
from pgqueue.retry import RetryPolicy
from pgqueue.types import ClaimedJob
from pgqueue.worker.claiming import claim_loop
from pgqueue.worker.completer import Completer
from pgqueue.worker.connection import worker_connection
from pgqueue.worker.executor import RunningJob, StopReason, classify_failure, execute
from pgqueue.worker.failure_hooks import FailureHooks
from pgqueue.worker.heartbeat import heartbeat_service
from pgqueue.worker.notifications import listen_service
from pgqueue.worker.observers import notify_observers
from pgqueue.worker.options import WorkerOptions
from pgqueue.worker.outcome import Outcome, OutcomeKind, describe
from pgqueue.worker.process_pool import ProcessPool
from pgqueue.worker.progress import ProgressWriter
from pgqueue.worker.services import (
    Service,
    ServiceContext,
    Services,
    WorkerIdentity,
    WorkerSignals,
)
from pgqueue.worker.slots import SlotGroup

if TYPE_CHECKING:
    from pgqueue.app import App

logger = logging.getLogger("pgqueue.worker")

EXIT_OK = 0
EXIT_SERVICE_FAILED = 1
"""A background service kept dying and the worker stopped (pgqueue.worker.services)."""
TOLD_TASKS_GRACE = 2.0
"""Seconds sync tasks told to stop get to return before their process is ended."""


class Worker:
    def __init__(self, app: App, options: WorkerOptions) -> None:
        self.app = app
        self.options = options
        self.name = options.worker_name
        self.identity = WorkerIdentity(self.name)
        self.signals = WorkerSignals()
        self.running: dict[int, RunningJob] = {}
        self.slot_groups = [SlotGroup(queues, slots, options.prefetch)
                            for queues, slots in options.slot_groups]
        """Slots per queue group, each with its own claim loop (pgqueue.worker.slots)."""
        self.signals.wakes.extend((group.queues, group.wake) for group in self.slot_groups)
        self.left_running: list[RunningJob] = []
        """Jobs that ended during shutdown while their sync task still ran in its thread."""
        self.observers: list[Any] = []
        """Told about claims, acknowledgements and finished jobs (pgqueue.worker.observers)."""
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.total_slots, thread_name_prefix="pgqueue-task"
        )
        self.children = ProcessPool(app, options, on_give_up=self.request_stop)
        """Child processes for sync tasks under `--pool process` or a task's pool="process"
        (pgqueue.worker.process_pool); none start until one is needed."""
        self.stopping = False
        self._forced = False
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def run(self) -> int:
        return asyncio.run(self.arun())

    async def arun(self) -> int:
        self.claim_connection = worker_connection(self.app, self.name, "claim")
        self.db = worker_connection(self.app, self.name, "ack")
        """Acknowledgements and every background service share it (worker/connection.py)."""
        self.completer = Completer(self.db, self.options.delete_jobs, self.observers, on_failed=
                                   FailureHooks(self.app.tasks, self._threads).failures_recorded,
                                   on_recorded=self._wake_held_back)
        self.progress = ProgressWriter(self.options.progress_interval)
        """Writes what running tasks report (context.set_progress / set_meta)."""
        self.served_tasks = self.app.served_tasks()
        """Task names the claim is limited to (None: any); read once, at start."""
        await self.register()
        await self._declare_queue_limits()
        loop = self.loop = asyncio.get_running_loop()
        handled = self._install_signal_handlers(loop)
        self.services = Services(on_give_up=lambda name: self.request_stop())
        self.services.start(self._services(ServiceContext(
            app=self.app, db=self.db, options=self.options, identity=self.identity,
            signals=self.signals, jobs=self, observers=self.observers,
            register=self.register, children=self.children)))
        if not self.options.listen:
            self.signals.ready.set()
        log_event(logger, logging.INFO, "worker.started", worker=self.name,
                  worker_id=self.worker_id, queues=self.options.queues_label,
                  concurrency=self.options.total_slots, pool=self.options.pool, pid=os.getpid(),
                  tasks="*" if self.served_tasks is None else ",".join(self.served_tasks))
        if self.served_tasks == ():
            log_event(logger, logging.WARNING, "worker.serves_no_tasks", worker=self.name,
                      note="no task is registered on this app, so it claims nothing: import "
                           "the modules that define them (--app names the App they use)")
        try:
            await self._start_children()
            await asyncio.gather(*(claim_loop(self, group) for group in self.slot_groups))
            await self._drain()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            if self.services.failed != "completer":
                await self.completer.wait_idle()
            await self.services.stop(timeout=5.0)
            await self.children.close()
            await self.claim_connection.close()
            await self._unregister()
            await self.db.close()
            self._threads.shutdown(wait=False, cancel_futures=True)
            await self.app.db.aclose()
            log_event(logger, logging.INFO, "worker.stopped", worker=self.name)
        failed = self.services.failed is not None or self.children.broken is not None
        code = EXIT_SERVICE_FAILED if failed else EXIT_OK
        await self._let_told_tasks_return()
        self._exit_if_tasks_outlive_their_jobs(code)
        return code

    async def _start_children(self) -> None:
        """Under `--pool process` every child starts now; otherwise they start with the first
        job of a task declared with pool="process" (checked now: children can import the
        app)."""
        if self.options.pool == "process":
            await self.children.start()
        elif any(task.pool == "process" for task in self.app.tasks.values()):
            self.children.prepare()

    def _services(self, context: ServiceContext) -> list[Service]:
        """Every background service, supervised one way (pgqueue.worker.services)."""
        services = [Service("completer", self.completer.run),
                    Service("heartbeat", functools.partial(heartbeat_service, context)),
                    Service("rescue", functools.partial(rescue_service, context)),
                    Service("progress", functools.partial(self.progress.run, context))]
        if self.options.listen:
            services.append(Service("listener", functools.partial(listen_service, context)))
        if self.options.prune_every:
            services.append(Service("retention", functools.partial(retention_service, context)))
        extra = list(self.app.worker_services)
        if self.options.metrics_port is not None:
            from pgqueue.observe.metrics import metrics_service

            if metrics_service not in extra:
                extra.append(metrics_service)
        services.extend(Service(getattr(service, "__name__", "service"),
                                functools.partial(service, context)) for service in extra)
        return services

    async def _let_told_tasks_return(self) -> None:
        """Sync tasks still running were told to stop (`should_abort()`): one that checks it
        returns within moments, and should not cost its process."""
        threads = [r.thread_future for r in self.left_running
                   if r.thread_future is not None and not r.thread_future.done()]
        if threads:
            await asyncio.wait(threads, timeout=TOLD_TASKS_GRACE)

    def _exit_if_tasks_outlive_their_jobs(self, code: int) -> None:
        """Jobs released at the shutdown timeout or on a second signal are back in `queued`,
        where another worker may start them (a timed-out one may be retried); a sync task still
        running one in a thread (Python cannot stop a thread) would run it twice at once, and
        would keep the process alive. The process ends here, whichever entry point runs the
        worker (CLI, Django command, embedded `run()`)."""
        outliving = [r.job.id for r in self.left_running
                     if r.thread_future is not None and not r.thread_future.done()]
        if not outliving:
            return
        log_event(logger, logging.CRITICAL, "worker.exit_forced", worker=self.name,
                  job_ids=",".join(map(str, outliving)),
                  note="sync tasks still run jobs given back to the queue: ending the process")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def stop_threadsafe(self) -> None:
        """request_stop() from another thread (a worker embedded in a program or a test)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.request_stop)

    def request_stop(self) -> None:
        """First call: stop claiming and drain. Second call: release running jobs now."""
        if self.stopping:
            self._forced = True
            log_event(logger, logging.WARNING, "worker.stop_forced", worker=self.name,
                      releasing=len(self.running))
            for running in self.running.values():
                running.interrupt(StopReason.SHUTDOWN)
        else:
            log_event(logger, logging.INFO, "worker.stopping", worker=self.name,
                      running=len(self.running), timeout_s=self.options.shutdown_timeout)
        self.stopping = True
        self._release_prefetched()
        self.signals.stop_requested.set()
        self.signals.wake_all()
        for group in self.slot_groups:
            group.freed.set()

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        handled = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_stop)
                handled.append(sig)
            except (RuntimeError, ValueError):
                pass  # not the main thread: the embedding program handles signals
        return handled

    async def register(self) -> None:
        self.worker_id = await self.db.arun(store.register_worker(
            name=self.name, hostname=socket.gethostname(), pid=os.getpid(),
            queues=self.options.queues, concurrency=self.options.total_slots,
            pool=self.options.pool, application_name=worker_application_stem(self.name),
            tasks=self.served_tasks))

    async def _declare_queue_limits(self) -> None:
        """Write the app's declared queue limits (`App.queue`), unless an operator has set a
        queue's limits at runtime: those stand (pgqueue.limits)."""
        for limits in self.app.queue_limits.values():
            written = [await self.db.arun(store.declare_queue_limit(
                queue=limits.queue, limit_name=name, limit_value=value))
                for name, value in limits.settings().items()]
            log_event(logger, logging.INFO, "queue.limits", queue=limits.queue,
                      source="code" if all(written) else "operator (kept)",
                      **{name: value for name, value in limits.settings().items() if value})

    async def _unregister(self) -> None:
        if self.worker_id is None:
            return
        try:
            await self.db.arun(store.unregister_worker(worker_id=self.worker_id))
        except DatabaseUnavailable as exc:
            log_event(logger, logging.WARNING, "worker.unregister_failed", error=str(exc)[:200])

    async def wait_for(
        self, event: asyncio.Event, timeout: float | None, *, or_stop: bool = True
    ) -> None:
        waiters = {asyncio.ensure_future(event.wait())}
        if or_stop:
            waiters.add(asyncio.ensure_future(self.signals.stop_requested.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    @property
    def worker_id(self) -> int | None:
        """Its id in pgqueue.workers (a new one after it was declared dead and registered
        again)."""
        return self.identity.worker_id

    @worker_id.setter
    def worker_id(self, worker_id: int | None) -> None:
        self.identity.worker_id = worker_id

    @property
    def ready(self) -> threading.Event:
        """Set once the worker is registered and (with listen) LISTENing: jobs enqueued from
        then on wake it within milliseconds."""
        return self.signals.ready

    # -- running -------------------------------------------------------------------------

    @property
    def prefetched(self) -> list[ClaimedJob]:
        """Claimed jobs waiting for a slot (options.prefetch), over every slot group."""
        return [job for group in self.slot_groups for job in group.prefetched]

    def start_job(self, job: ClaimedJob, group: SlotGroup) -> None:
        if not group.has_room_to_run:
            group.prefetched.append(job)
            return
        context = JobContext(job=job, worker_name=self.name, conninfo=self.app.dsn,
                             on_report_pending=self.progress.wake)
        running = RunningJob(job=job, context=context)
        self.running[job.id] = running
        group.running.add(job.id)
        log_event(logger, logging.INFO, "job.started", job_id=job.id, task=job.task_name,
                  attempt=job.attempt, queue=job.queue)
        running.asyncio_task = asyncio.create_task(self._run_job(running, group),
                                                   name=f"job-{job.id}")

    async def _run_job(self, running: RunningJob, group: SlotGroup) -> Outcome:
        job = running.job
        task = self.app.tasks.get(job.task_name)
        try:
            outcome = await execute(running, task, self._threads, self.children)
        except asyncio.CancelledError:
            outcome = Outcome(job, OutcomeKind.RELEASED)
        except Exception as exc:  # a bug in pgqueue must not leave the job running
            logger.exception("unexpected error running job %s", job.id)
            outcome = classify_failure(job, task.retry if task else RetryPolicy(), exc)
        duration = time.monotonic() - running.started
        report = running.context.existing_report
        reported = report.close() if report is not None else None
        if reported is not None:  # the last report lands with the outcome
            outcome = dataclasses.replace(outcome, progress=reported)
        if self.observers:
            notify_observers(self.observers, "job_finished", outcome, duration)
        if outcome.kind == OutcomeKind.SUCCEEDED and running.context.completed_in_transaction:
            pass  # context.atomic() already recorded it with the task's own writes
        else:
            self.completer.submit(outcome)
        self._log_outcome(outcome, duration)
        thread = running.thread_future
        if thread is not None and not thread.done():
            if self.stopping:
                self.left_running.append(running)
            else:
                await _quietly(thread)
        self.running.pop(job.id, None)
        group.running.discard(job.id)
        if group.prefetched and not self.stopping:
            self.start_job(group.prefetched.popleft(), group)
        group.freed.set()
        return outcome

    def _wake_held_back(self) -> None:
        """A committed acknowledgement may have freed the limit (or lock) that held a group's
        due jobs: claim again now rather than at the end of its back-off wait."""
        for group in self.slot_groups:
            if group.held_back:
                group.wake.set()

    def _release_prefetched(self) -> None:
        """Give back the jobs that never started (no attempt spent) for others to run."""
        for group in self.slot_groups:
            while group.prefetched:
                self.completer.submit(Outcome(group.prefetched.popleft(), OutcomeKind.RELEASED))

    def cancel_prefetched(self, job_id: int) -> None:
        """A job cancelled before it started ends cancelled without running."""
        for group in self.slot_groups:
            for job in group.prefetched:
                if job.id == job_id:
                    group.prefetched.remove(job)
                    log_event(logger, logging.INFO, "job.abort_requested", job_id=job_id)
                    self.completer.submit(Outcome(job, OutcomeKind.CANCELLED,
                                                  error=describe(JobAborted())))
                    group.freed.set()
                    return

    def _log_outcome(self, outcome: Outcome, duration: float) -> None:
        level = logging.INFO
        if outcome.kind in (OutcomeKind.FAILED, OutcomeKind.RETRY) and outcome.error:
            level = logging.WARNING if outcome.kind == OutcomeKind.RETRY else logging.ERROR
        if not logger.isEnabledFor(level):
            return  # a busy worker logging at WARNING skips building the fields
        job = outcome.job
        fields: dict[str, Any] = {"job_id": job.id, "task": job.task_name,
                                  "attempt": job.attempt, "duration_ms": duration * 1000}
        if outcome.error is not None:
            fields["error"] = f"{outcome.error.type}: {outcome.error.message}"[:300]
            if outcome.kind == OutcomeKind.FAILED or logger.isEnabledFor(logging.DEBUG):
                fields["traceback"] = outcome.error.traceback  # failed for good, or DEBUG
        if outcome.kind == OutcomeKind.RETRY:
            fields["retry_in_s"] = outcome.retry_delay
        log_event(logger, level, f"job.{outcome.kind}", **fields)

    async def _drain(self) -> None:
        """After a stop request: let running jobs finish within the shutdown timeout, then
        interrupt the rest so they are released back to queued."""
        self._release_prefetched()  # claimed while the stop request came in
        if not self.running:
            return
        tasks = [r.asyncio_task for r in self.running.values() if r.asyncio_task is not None]
        _done, pending = await asyncio.wait(tasks, timeout=self.options.shutdown_timeout)
        if pending:
            log_event(logger, logging.WARNING, "worker.shutdown_timeout",
                      releasing=len(pending))
            for running in list(self.running.values()):
                running.interrupt(StopReason.SHUTDOWN)
            await asyncio.wait(pending)


async def _quietly(future: asyncio.Future[Any]) -> None:
    with contextlib.suppress(BaseException):
        await asyncio.shield(future)
