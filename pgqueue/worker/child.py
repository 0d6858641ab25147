"""What runs inside a child process of the worker's process pool (pgqueue.worker.process_pool).

A child imports the app (`--app`) once, then runs one job at a time as its worker sends them.
Requests and replies are JSON frames on a socket: nothing of the user's is pickled. Arguments
arrive as the JSON the job row holds; the return value leaves as the JSON text that will be
stored, checked here, where the value was made. Everything else (claims, acknowledgements,
retry policies, timeouts, heartbeats) stays with the worker.

A child never decides to stop. It ignores SIGINT and SIGTERM: a Ctrl-C in a terminal, or
systemd's SIGTERM to every process of the service, reaches the children too, and must not end
jobs the worker is still draining. It exits when its socket closes (the worker retired it), or
when the worker dies, even mid-job: an orphan must not go on running a job that another worker
is about to be given.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pgqueue.context import JobContext
from pgqueue.errors import (
    ConfigurationError,
    InvalidArguments,
    ResultTooLarge,
    Retry,
    UnknownTask,
)
from pgqueue.progress import ProgressReport
from pgqueue.types import ClaimedJob
from pgqueue.validation import checked_result, to_json
from pgqueue.worker.executor import call_with_hooks
from pgqueue.worker.outcome import describe

if TYPE_CHECKING:
    from pgqueue.app import App

logger = logging.getLogger("pgqueue.worker")

FRAME_HEADER = struct.Struct("!I")
"""Each frame: its length (4 bytes, network order), then that many bytes of UTF-8 JSON."""
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ChildSetup:
    """What a new child needs from its worker (plain values: the only thing pickled)."""

    app_path: str
    process_setup: str | None
    dsn: str
    pooler: str
    log_level: str
    worker_name: str
    progress_interval: float = 1.0
    """Seconds between progress frames sent to the worker while a job runs."""


def encode_frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return FRAME_HEADER.pack(len(body)) + body


def resident_bytes(pid: int | str = "self") -> int | None:
    """Resident memory of a process (Linux /proc); None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _own_memory() -> int:
    """Resident memory now, or (without /proc) the peak, which only a leak keeps growing."""
    current = resident_bytes()
    if current is not None:
        return current
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def child_main(channel: socket.socket, setup: ChildSetup) -> None:
    """The child's whole life: load the app, say ready (or why not), run jobs until the
    socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=setup.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        app = _load_app(setup)
    except BaseException as exc:  # the worker reports it; the child has nothing else to do
        channel.sendall(encode_frame({"failed": f"{type(exc).__name__}: {exc}"[:2000]}))
        os._exit(1)
    channel.sendall(encode_frame({"ready": os.getpid(), "rss": _own_memory()}))
    threading.Thread(target=_exit_with_the_worker, daemon=True,
                     name="pgqueue-child-lifeline").start()
    forwarder = ProgressForwarder(channel, setup.progress_interval)
    while True:
        request = _read_request(channel)
        reply = run_request(app, setup.worker_name, request, forwarder)
        reply["rss"] = _own_memory()
        forwarder.send(reply)


def _load_app(setup: ChildSetup) -> App:
    from pgqueue.cli import load_app

    if setup.process_setup:
        module_name, _, function = setup.process_setup.partition(":")
        getattr(__import__(module_name, fromlist=[function]), function)()
    app = load_app(setup.app_path)
    if _dsn_of(app) != setup.dsn:  # the worker's --dsn, or a test's database
        app.dsn = setup.dsn
    if app.pooler != setup.pooler:
        app.pooler = setup.pooler  # type: ignore[assignment]
    return app


def _dsn_of(app: App) -> str | None:
    try:
        return app.dsn
    except ConfigurationError:  # none in the environment: the worker's is the one
        return None


def _read_request(channel: socket.socket) -> dict[str, Any]:
    """The next job; the end of the socket (the worker retired this child, or died) ends
    the child."""
    header = _read_exactly(channel, FRAME_HEADER.size)
    body = _read_exactly(channel, FRAME_HEADER.unpack(header)[0]) if header else b""
    if not body:
        os._exit(0)
    return json.loads(body)


def _exit_with_the_worker() -> None:
    """While a job runs nobody reads the socket: this thread watches the worker's own
    sentinel (multiprocessing's pipe from the process that started this one) and ends the
    child the moment the worker dies. It wakes for nothing else, so jobs cost no thread
    switch."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
    os._exit(0)


def _read_exactly(channel: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        try:
            chunk = channel.recv(size - len(data))
        except OSError:
            return b""
        if not chunk:
            return b""
        data += chunk
    return data


class ProgressForwarder:
    """Sends the running job's progress reports to the worker (which coalesces them with its
    other jobs' and writes them: pgqueue.worker.progress), at most one frame per interval,
    from a thread of its own so a report never waits on the socket. Every frame to the worker
    goes through `send`, under one lock: a progress frame never lands after its job's reply."""

    def __init__(self, channel: socket.socket, interval: float) -> None:
        self.channel = channel
        self.interval = interval
        self._sending = threading.Lock()
        self._pending = threading.Event()
        self._report: ProgressReport | None = None
        self._job_id = 0
        self._thread: threading.Thread | None = None

    def watch(self, report: ProgressReport, job_id: int) -> None:
        with self._sending:
            self._report, self._job_id = report, job_id
        report.on_pending = self._pending.set
        if self._thread is None:  # started by the first task that reports
            self._thread = threading.Thread(target=self._forward, daemon=True,
                                            name="pgqueue-child-progress")
            self._thread.start()

    def send(self, frame: dict[str, Any]) -> None:
        with self._sending:
            try:
                self.channel.sendall(encode_frame(frame))
            except OSError:
                os._exit(0)  # the worker is gone

    def _forward(self) -> None:
        last_sent = -self.interval
        while True:
            self._pending.wait()
            time.sleep(max(0.0, last_sent + self.interval - time.monotonic()))
            self._pending.clear()
            last_sent = time.monotonic()
            with self._sending:
                update = self._report.take() if self._report is not None else None
                if update is None:
                    continue
                try:
                    self.channel.sendall(encode_frame(
                        {"progress_of": self._job_id, **update.to_frame()}))
                except OSError:
                    os._exit(0)


def run_request(app: App, worker_name: str, request: dict[str, Any],
                forwarder: ProgressForwarder | None = None) -> dict[str, Any]:
    """Run one job; the reply says how the task ended, as the worker's executor would have
    seen it in a thread (the worker applies the retry policy), with the progress reported
    since the last progress frame."""
    task = app.tasks.get(request["task_name"])
    if task is None:
        return {"kind": "raised", "error": _error(UnknownTask(
            f"no task named {request['task_name']!r} is registered in the child process"))}
    context = None
    args: list[Any] = request["args"]
    if task.pass_context:
        context = JobContext(job=_job(request), worker_name=worker_name, conninfo=app.dsn)
        if forwarder is not None:
            forwarder.watch(context.report, request["id"])
        args = [context, *args]
    reply = _run(app, task, args, request["kwargs"])
    if context is not None:
        reply["atomic"] = context.completed_in_transaction
        reported = context.report.close()
        if reported is not None:
            reply["progress"] = reported.to_frame()
    return reply


def _run(app: App, task: Any, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        result = call_with_hooks(task, args, kwargs)
    except Retry as retry:
        return {"kind": "retry", "delay": retry.delay}
    except BaseException as exc:  # as in a thread: SystemExit and the like fail the attempt
        return {"kind": "raised", "error": _error(exc)}
    if result is None:
        return {"kind": "returned", "result": "null"}
    try:
        return {"kind": "returned",
                "result": checked_result(to_json(result, "the return value"),
                                         app.result_max_bytes)}
    except (InvalidArguments, ResultTooLarge) as exc:
        return {"kind": "unstorable", "error": _error(exc)}


def _error(exc: BaseException) -> list[str | None]:
    error = describe(exc)
    return [error.type, error.message, error.traceback]


def _job(request: dict[str, Any]) -> ClaimedJob:
    return ClaimedJob(
        id=request["id"], task_name=request["task_name"], queue=request["queue"],
        args=request["args"], kwargs=request["kwargs"], priority=request["priority"],
        attempt=request["attempt"], max_attempts=request["max_attempts"],
        claim_token=uuid.UUID(request["claim_token"]),
        enqueued_at=datetime.fromisoformat(request["enqueued_at"]),
        run_at=datetime.fromisoformat(request["run_at"]))


def job_request(job: ClaimedJob) -> dict[str, Any]:
    """The request the worker sends for a job (the inverse of `_job`)."""
    return {"id": job.id, "task_name": job.task_name, "queue": job.queue, "args": job.args,
            "kwargs": job.kwargs, "priority": job.priority, "attempt": job.attempt,
            "max_attempts": job.max_attempts, "claim_token": str(job.claim_token),
            "enqueued_at": job.enqueued_at.isoformat(), "run_at": job.run_at.isoformat()}
