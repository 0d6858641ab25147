"""The worker's process pool (`--pool process`, or a task's `pool="process"`): plain-function
tasks run in child processes (pgqueue.worker.child), so CPU-bound Python uses every core and a
task that leaks, hangs or crashes costs only its child. The worker keeps claims,
acknowledgements, heartbeats and LISTEN on its event loop, batched as with threads: a slot
whose task runs in a child waits on that child's reply.

- Children start with `forkserver` (forked from a server process that imported the app once:
  a few milliseconds each) or `spawn` (a fresh interpreter: the app is imported each time);
  neither forks the worker itself, whose threads and connections a fork would copy mid-use.
- A child that dies mid-job (a hard exit, a segfault, an OOM kill) ends that job's attempt at
  once as `WorkerLost`, and the job follows its retry policy; the child is replaced and the
  other children's jobs go on. Attempts are counted, so a poison job ends failed; starts back
  off while every child keeps dying, so the pool cannot spin.
- A job that times out, is cancelled, or is still running at the shutdown deadline has its
  child killed (SIGKILL) and replaced: the task really stops, its slot is free at once.
- A child is retired after `max_tasks_per_child` jobs, or after a job that left it holding
  `max_memory_per_child` MiB or more; the job that crossed the line keeps its outcome.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import multiprocessing
import sys
import time
from typing import TYPE_CHECKING, Any

from pgqueue.errors import ConfigurationError, WorkerLost
from pgqueue.logs import log_event
from pgqueue.types import ClaimedJob
from pgqueue.worker.backoff import Backoff
from pgqueue.worker.child import ChildSetup, job_request
from pgqueue.worker.child_process import (
    ChildGone,
    ChildProcess,
    ChildReply,
    ChildStartFailed,
    describe_exit,
    reap,
    spawn_child,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from pgqueue.app import App
    from pgqueue.progress import ProgressUpdate
    from pgqueue.tasks import Task
    from pgqueue.worker.options import WorkerOptions

logger = logging.getLogger("pgqueue.worker")

CLOSE_GRACE = 5.0
"""Seconds idle children get to exit at shutdown before they are killed."""
CRASHES_BEFORE_BACKOFF = 3
"""Children dying one after another without a job finishing in between, before replacement
starts wait (a growing delay, up to 30 s)."""
MAX_FAILED_STARTS = 5
"""Children failing to start in a row before the pool gives up and the worker stops."""


def app_reference(app: App, given: str | None) -> str:
    """`module:attr` a child imports to get this app: the CLI's --app, else the imported
    module that holds it (its name must be importable: not __main__)."""
    if given:
        return given
    for name, module in list(sys.modules.items()):
        if name == "__main__" or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is app:
                return f"{name}:{attr}"
    raise ConfigurationError(
        "the process pool's children import the app by name: define it in an importable "
        "module (not the __main__ script) or pass app_path='module:attr' (the CLI's --app)")


class ProcessPool:
    """Up to `concurrency` children, started on demand (all at once by `start()` under
    `--pool process`) and kept at that number: a child that exits is replaced."""

    def __init__(self, app: App, options: WorkerOptions,
                 on_give_up: Callable[[], None]) -> None:
        self.app = app
        self.options = options
        self.size = options.total_slots
        self._on_give_up = on_give_up
        self._context = multiprocessing.get_context(options.child_start_method)
        self._manager: concurrent.futures.ThreadPoolExecutor | None = None
        """One thread for every multiprocessing call that may block (start, join): the
        multiprocessing bookkeeping is not safe from two threads at once."""
        self._setup: ChildSetup | None = None
        self._children: set[ChildProcess] = set()
        self._idle: list[ChildProcess] = []
        self._starting = 0
        self._available = asyncio.Event()
        self._crashes = Backoff(initial=0.5, maximum=30.0)
        self._failed_starts = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.broken: str | None = None
        """Why no child can be started (the worker is stopping), once the pool gave up."""
        self.replaced: collections.Counter[str] = collections.Counter()
        """Children replaced so far, by reason: died, timeout, interrupted, max_tasks,
        max_memory."""

    def runs(self, task: Task[Any, Any]) -> bool:
        """Whether this plain-function task runs in a child (its own `pool=` first)."""
        return (task.pool or self.options.pool) == "process"

    def prepare(self) -> None:
        """Resolve what children need (the app's import path) now, so a worker that cannot
        have children fails at start, not at its first job."""
        if self._setup is not None:
            return
        app_path = app_reference(self.app, self.options.app_path)
        self._setup = ChildSetup(
            app_path=app_path, process_setup=self.app.process_setup, dsn=self.app.dsn,
            pooler=self.app.pooler, worker_name=self.options.worker_name,
            progress_interval=self.options.progress_interval,
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()))
        if self.options.child_start_method == "forkserver":
            module = app_path.rpartition(":" if ":" in app_path else ".")[0]
            # Imported once in the fork server, so each child starts with the app loaded
            # (pgqueue.cli: the child loads the app with it).
            self._context.set_forkserver_preload(
                [module, "pgqueue.worker.child", "pgqueue.cli"])

    async def start(self) -> None:
        """Start every child now (`--pool process`): a child that cannot start stops the
        worker before it claims anything. Logs the start-up cost."""
        self.prepare()
        started = time.monotonic()
        self._starting += self.size
        try:
            spawned = await asyncio.gather(
                *(self._spawn_child() for _ in range(self.size)), return_exceptions=True)
        finally:
            self._starting -= self.size
        children = [child for child in spawned if isinstance(child, ChildProcess)]
        for child in children:
            self._adopt(child)  # closed with the pool, even if a sibling failed
        for failure in spawned:
            if isinstance(failure, BaseException):
                raise failure
        log_event(logger, logging.INFO, "pool.started", children=self.size,
                  start_method=self.options.child_start_method,
                  seconds=round(time.monotonic() - started, 3),
                  pids=",".join(str(c.pid) for c in children))

    # -- running a job -------------------------------------------------------------------

    async def run(self, job: ClaimedJob, timeout: float | None,
                  on_progress: Callable[[ProgressUpdate], None]) -> ChildReply:
        """Run the job in an idle child, handing `on_progress` what the task reports while it
        runs. Raises TimeoutError past `timeout` and WorkerLost if the child dies; either way,
        and when cancelled (abort, shutdown), the child is gone by the time this returns."""
        child = await self._acquire()
        if child is None:
            return ChildReply(kind="unavailable")
        child.job_id = job.id
        try:
            frame = await asyncio.wait_for(child.call(job_request(job), on_progress), timeout)
        except TimeoutError:
            await self._kill(child, "timeout")
            raise
        except ChildGone:
            code = await asyncio.shield(child.exited)
            self._forget(child, "died")
            log_event(logger, logging.ERROR, "pool.child_died", pid=child.pid, job_id=job.id,
                      exit=describe_exit(code))
            raise WorkerLost(f"the child process {child.pid} running the job died "
                             f"({describe_exit(code)})") from None
        except BaseException:  # cancelled: the job was aborted or is released at shutdown
            await self._kill(child, "interrupted")
            raise
        self._crashes.reset()
        self._return(child, frame)
        return ChildReply.from_frame(frame)

    async def _acquire(self) -> ChildProcess | None:
        """An idle child, once there is one; None once the pool has given up."""
        while True:
            if self.broken is not None:
                return None
            if self._idle:
                return self._idle.pop()
            if len(self._children) + self._starting < self.size:
                self._start_soon()
            self._available.clear()
            await self._available.wait()

    def _return(self, child: ChildProcess, frame: dict[str, Any]) -> None:
        """Back to idle, unless the job it just ran put it over a limit."""
        child.job_id = None
        child.jobs_run += 1
        child.rss_bytes = frame.get("rss", child.rss_bytes)
        options = self.options
        reason = None
        if options.max_tasks_per_child and child.jobs_run >= options.max_tasks_per_child:
            reason = "max_tasks"
        elif (options.max_memory_per_child and child.rss_bytes is not None
              and child.rss_bytes >= options.max_memory_per_child * 1024 * 1024):
            reason = "max_memory"
        if reason is None:
            self._idle.append(child)
            self._available.set()
            return
        log_event(logger, logging.INFO, "pool.child_retired", pid=child.pid, reason=reason,
                  jobs_run=child.jobs_run, rss_mib=round((child.rss_bytes or 0) / 2**20, 1))
        child.retire()
        self._forget(child, reason)

    async def _kill(self, child: ChildProcess, reason: str) -> None:
        child.kill()
        self._forget(child, reason)
        await asyncio.shield(child.exited)  # the slot frees once the task has really stopped

    def _forget(self, child: ChildProcess, reason: str) -> None:
        """Drop a child that is gone or going, and start its replacement."""
        if child not in self._children:
            return
        self._children.discard(child)
        if child in self._idle:
            self._idle.remove(child)
        self.replaced[reason] += 1
        if reason == "died":
            self._crashes.failures += 1
        self._start_soon()

    # -- starting and stopping children -----------------------------------------------

    def _start_soon(self) -> None:
        if self._closing or self.broken is not None:
            return
        self._starting += 1
        task = asyncio.create_task(self._start_one(), name="pgqueue-child-start")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_one(self) -> None:
        try:
            if self._crashes.failures >= CRASHES_BEFORE_BACKOFF:
                delay = self._crashes.next_delay()
                if self._crashes.should_log():
                    log_event(logger, logging.WARNING, "pool.children_crashing",
                              crashes=self._crashes.failures - 1, restart_in_s=round(delay, 2))
                await asyncio.sleep(delay)
            child = await self._spawn_child()
        except ChildStartFailed as exc:
            self._failed_starts += 1
            log_event(logger, logging.ERROR, "pool.child_start_failed", error=str(exc)[:500],
                      failures=self._failed_starts)
            if self._failed_starts >= MAX_FAILED_STARTS:
                self.broken = f"child processes fail to start: {exc}"
                self._available.set()
                self._on_give_up()
                return
            self._crashes.failures += 1
            self._starting -= 1
            self._start_soon()
            return
        self._starting -= 1
        self._failed_starts = 0
        if self._closing:
            child.retire()
            return
        self._adopt(child)

    def _adopt(self, child: ChildProcess) -> None:
        self._children.add(child)
        self._idle.append(child)
        self._available.set()
        asyncio.get_running_loop().add_reader(child.process.sentinel, self._on_exit, child)

    def _on_exit(self, child: ChildProcess) -> None:
        """The child's process ended (however): reap it, and replace it if it was idle."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(child.process.sentinel)
        if child in self._idle:  # died between jobs (an OOM kill, say)
            log_event(logger, logging.WARNING, "pool.child_died", pid=child.pid, job_id=None)
            self._forget(child, "died")
        reaping = loop.run_in_executor(self._management(), reap, child.process)
        reaping.add_done_callback(lambda done: child.exited.done() or child.exited.set_result(
            None if done.exception() else done.result()))

    async def _spawn_child(self) -> ChildProcess:
        assert self._setup is not None, "prepare() first"
        return await spawn_child(self._context, self._setup, self._management())

    def _management(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._manager is None:
            self._manager = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="pgqueue-pool")
        return self._manager

    async def close(self) -> None:
        """Retire every child (running jobs have ended: drained, or released and killed),
        then kill any that has not exited within CLOSE_GRACE."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        children = list(self._children)
        self._children.clear()
        self._idle.clear()
        for child in children:
            child.retire()
        exits = [child.exited for child in children]
        if exits:
            _done, pending = await asyncio.wait(exits, timeout=CLOSE_GRACE)
            for child in children:
                if not child.exited.done():
                    log_event(logger, logging.WARNING, "pool.child_killed", pid=child.pid,
                              reason="did not exit at shutdown")
                    child.kill()
            if pending:
                await asyncio.wait(pending, timeout=CLOSE_GRACE)
        if self._manager is not None:
            self._manager.shutdown(wait=True)

    # -- what observers see --------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Every live child: pid, the job it runs, its memory, jobs run, start time."""
        return [child.describe() for child in sorted(self._children, key=lambda c: c.pid)]
