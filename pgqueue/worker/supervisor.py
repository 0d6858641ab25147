"""`pgqueue worker --supervise`: run the worker as a child process and restart it when it dies.

A task that hard-exits (`os._exit`), segfaults or is OOM-killed takes its worker process down;
the supervisor notices at once, marks the dead worker's row so its jobs are rescued now (the
attempt counted, the error recorded as WorkerLost) rather than after the heartbeat timeout,
and starts a new worker, backing off when crashes repeat. The rescue's attempt accounting is
what ends a crash loop: after max_attempts the poison job is failed instead of claimed again.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from pgqueue import store
from pgqueue.app import App
from pgqueue.errors import DatabaseUnavailable
from pgqueue.logs import log_event

logger = logging.getLogger("pgqueue.supervisor")

STABLE_RUN_SECONDS = 30.0
MAX_RESTART_DELAY = 30.0


class Supervisor:
    def __init__(self, app: App, child_argv: Sequence[str], heartbeat_timeout: float) -> None:
        self.app = app
        self.child_argv = list(child_argv)
        self.heartbeat_timeout = heartbeat_timeout
        self._stopping = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        crashes = 0
        while True:
            started = time.monotonic()
            self._child = subprocess.Popen(self.child_argv)
            log_event(logger, logging.INFO, "supervisor.started_worker", pid=self._child.pid)
            code = self._child.wait()
            if self._stopping.is_set() or code == 0:
                return code if code >= 0 else 0
            crashes = crashes + 1 if time.monotonic() - started < STABLE_RUN_SECONDS else 1
            delay = min(MAX_RESTART_DELAY, 2.0 ** (crashes - 1))
            log_event(logger, logging.ERROR, "supervisor.worker_died", pid=self._child.pid,
                      exit=_describe_exit(code), restart_in_s=delay)
            self._rescue_jobs_of(self._child.pid)
            if self._stopping.wait(delay):
                return 0

    def _rescue_jobs_of(self, pid: int) -> None:
        try:
            self.app.db.run(store.mark_worker_dead(hostname=socket.gethostname(), pid=pid))
            rescued = self.app.db.run(store.rescue_stalled_jobs(
                heartbeat_timeout=self.heartbeat_timeout))
        except DatabaseUnavailable as exc:
            log_event(logger, logging.WARNING, "supervisor.rescue_deferred", error=str(exc)[:200],
                      note="the jobs are rescued after the heartbeat timeout instead")
            return
        for job_id, state in rescued:
            log_event(logger, logging.WARNING, "job.rescued", job_id=job_id, state=state,
                      reason="worker process died")


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def child_argv(argv: Sequence[str]) -> list[str]:
    """The same command line, minus --supervise, as a `python -m pgqueue` child."""
    return [sys.executable, "-m", "pgqueue", *(a for a in argv if a != "--supervise")]
