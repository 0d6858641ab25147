"""The demo's child processes: the project's ``manage.py`` (migrate, the worker, runserver), run
as a user would run them, each in its own session so a Ctrl-C reaches only the demo, which then
stops them in order with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

MANAGE = Path(__file__).resolve().parent / "manage.py"
WORKER_CONCURRENCY = 8

T = TypeVar("T")


def manage_command(*args: str) -> list[str]:
    return [sys.executable, str(MANAGE), *args]


def manage(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py ARGS`` to completion, capturing its output."""
    return subprocess.run(manage_command(*args), capture_output=True, text=True, timeout=timeout,
                          check=False)


def worker_command() -> list[str]:
    return manage_command("pgqueue", "--log-level", "INFO", "worker",
                          "--concurrency", str(WORKER_CONCURRENCY))


def start(command: list[str], output: IO[Any] | None = None) -> subprocess.Popen[bytes]:
    """Start `command` in its own session, its output to `output` (default: ours)."""
    return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT if output else None,
                            start_new_session=True)


def stop(process: subprocess.Popen[bytes], timeout: float = 40) -> int:
    """SIGTERM, then wait up to `timeout` seconds (a pgqueue worker lets running jobs finish
    within its 30 s shutdown timeout); SIGKILL if it is still there. Returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def wait_for(predicate: Callable[[], T], *, timeout: float, interval: float = 0.05) -> T | None:
    """Poll `predicate` until it returns something truthy (returned), or None after `timeout`
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
