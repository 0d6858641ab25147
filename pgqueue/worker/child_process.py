"""The worker's handle on one child process of its pool (pgqueue.worker.process_pool):
starting it, the socket to it (length-prefixed JSON frames, pgqueue.worker.child), what it
runs, how it ended."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgqueue.errors import ConfigurationError
from pgqueue.progress import ProgressUpdate
from pgqueue.types import JobError
from pgqueue.worker.child import (
    FRAME_HEADER,
    ChildSetup,
    child_main,
    encode_frame,
    resident_bytes,
)

START_TIMEOUT = 120.0
"""Seconds a new child gets to import the app and say it is ready."""


class ChildGone(Exception):
    """The child's socket closed before its reply: the child died."""


class ChildStartFailed(ConfigurationError):
    """A child process could not start (it could not import the app, say)."""


@dataclass(frozen=True, slots=True)
class ChildReply:
    """How the task ended in its child (pgqueue.worker.child.run_request)."""

    kind: str
    """returned, retry, raised (the retry policy decides), unstorable (a return value the
    database cannot hold: failed) or unavailable (no child can be started: the job never
    ran)."""
    result_json: str | None = None
    delay: float = 0.0
    error: JobError | None = None
    completed_in_transaction: bool = False
    progress: ProgressUpdate | None = None
    """Progress the task reported after the last progress frame."""

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ChildReply:
        error = frame.get("error")
        progress = frame.get("progress")
        return cls(kind=frame["kind"], result_json=frame.get("result"),
                   delay=float(frame.get("delay", 0.0)),
                   error=JobError(*error) if error else None,
                   completed_in_transaction=bool(frame.get("atomic")),
                   progress=None if progress is None else ProgressUpdate.from_frame(progress))


class ChildProcess:
    """One child, seen from the worker: its process, its socket, what it runs."""

    def __init__(self, process: Any, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, rss_bytes: int | None) -> None:
        self.process = process
        self.pid: int = process.pid
        self.reader = reader
        self.writer = writer
        self.started_at = time.time()
        self.jobs_run = 0
        self.rss_bytes = rss_bytes
        self.job_id: int | None = None
        self.exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def call(self, request: dict[str, Any],
                   on_progress: Callable[[ProgressUpdate], None]) -> dict[str, Any]:
        """Send a job and wait for its reply, handing on the progress frames sent before it."""
        self.writer.write(encode_frame(request))
        try:
            await self.writer.drain()
            while True:
                frame = await read_frame(self.reader)
                if "progress_of" not in frame:
                    return frame
                if frame["progress_of"] == request["id"]:
                    on_progress(ProgressUpdate.from_frame(frame))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ChildGone from exc

    def kill(self) -> None:
        if not self.exited.done():
            with contextlib.suppress(OSError, ValueError):  # already gone
                self.process.kill()

    def retire(self) -> None:
        """Close its socket: the child exits (pgqueue.worker.child)."""
        self.writer.close()

    def describe(self) -> dict[str, Any]:
        rss = resident_bytes(self.pid) or self.rss_bytes
        return {"pid": self.pid, "job_id": self.job_id, "rss_bytes": rss,
                "jobs_run": self.jobs_run, "started_at": self.started_at}


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    header = await reader.readexactly(FRAME_HEADER.size)
    return json.loads(await reader.readexactly(FRAME_HEADER.unpack(header)[0]))


async def spawn_child(
    context: Any, setup: ChildSetup, manager: concurrent.futures.Executor,
) -> ChildProcess:
    """Start a child and wait until it has loaded the app; ChildStartFailed says why not.
    `manager` runs the blocking multiprocessing calls, one at a time."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    process = context.Process(target=child_main, args=(theirs, setup), name="pgqueue-child")
    try:
        await loop.run_in_executor(manager, process.start)
    except Exception as exc:
        ours.close()
        raise ChildStartFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        theirs.close()
    pid = process.pid
    reader, writer = await asyncio.open_connection(sock=ours)
    try:
        frame = await asyncio.wait_for(read_frame(reader), START_TIMEOUT)
    except BaseException as exc:
        writer.close()
        process.kill()
        await asyncio.shield(loop.run_in_executor(manager, reap, process))
        if isinstance(exc, asyncio.IncompleteReadError | ConnectionError | TimeoutError):
            raise ChildStartFailed(f"the child process {pid} exited or hung "
                                   "before it was ready (see its output)") from exc
        raise
    if "failed" in frame:
        writer.close()
        await loop.run_in_executor(manager, reap, process)
        raise ChildStartFailed(frame["failed"])
    return ChildProcess(process, reader, writer, frame.get("rss"))


def describe_exit(code: int | None) -> str:
    """As a person reads it: exit code 3, signal SIGKILL."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def reap(process: Any) -> int | None:
    """Wait for an ended child (call it once its sentinel is ready) and free its resources."""
    process.join()
    code = process.exitcode
    process.close()
    return code
