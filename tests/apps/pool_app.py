"""Tasks for the process-pool tests (`--pool process`, `pool="process"`); worker subprocesses
and the pool's children import this module with --app.

Every task returns the pid of the process that ran it, so a test can tell threads (the
worker's pid) from children, and one child from its replacement.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time

import pgqueue

app = pgqueue.App()

_leak: list[bytes] = []
"""What `grow` keeps: memory a leaky task never gives back."""


def burn_cpu(milliseconds: float) -> None:
    """Pure Python for about this long on one core (the benchmark's CPU-bound job)."""
    until = time.thread_time() + milliseconds / 1000
    while time.thread_time() < until:
        sum(i * i for i in range(200))


@app.task(retry=False)
def whoami() -> int:
    return os.getpid()


@app.task(retry=False, pool="process")
def whoami_in_child() -> int:
    return os.getpid()


@app.task(retry=False, pool="thread")
def whoami_in_thread() -> int:
    return os.getpid()


@app.task(retry=False)
async def whoami_async() -> int:
    await asyncio.sleep(0)
    return os.getpid()


@app.task(retry=False)
def echo(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


@app.task(retry=False, pass_context=True)
def context_fields(context: pgqueue.JobContext) -> dict[str, object]:
    job = context.job
    return {"job_id": context.job_id, "attempt": context.attempt, "queue": job.queue,
            "claim_token": str(job.claim_token), "worker": context.worker_name,
            "pid": os.getpid()}


@app.task(retry=False)
def burn(milliseconds: float) -> int:
    burn_cpu(milliseconds)
    return os.getpid()


@app.task(retry=pgqueue.RetryPolicy(max_attempts=3, backoff="fixed", base_delay=0))
def fails(message: str) -> None:
    raise ValueError(message)


@app.task(retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
def exits_hard(code: int = 3) -> None:
    os._exit(code)


@app.task(retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
def segfaults() -> None:
    ctypes.string_at(0)


@app.task(retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
def killed_by_signal(signal_name: str) -> None:
    """As the kernel's OOM killer (SIGKILL) would end it."""
    os.kill(os.getpid(), getattr(signal, signal_name))
    time.sleep(30)


@app.task(retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
def raises_system_exit() -> None:
    raise SystemExit(4)


@app.task(retry=False)
def grow(megabytes: int) -> int:
    """Keeps `megabytes` MiB for the rest of its process's life (touched, so resident)."""
    _leak.append(b"\x01" * (megabytes * 1024 * 1024))
    return os.getpid()


@app.task(retry=False)
def returns_a_set() -> object:
    return {1, 2}


@app.task(retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
def asks_to_retry(marker: str) -> str:
    """Retry once (no attempt spent), then succeed: the marker file says it asked."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise pgqueue.Retry(delay=0)
    return "second run"


@app.task(timeout=0.5, retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
def spins_past_its_timeout(marker_dir: str) -> None:
    """Never checks should_abort(); writes a file each 50 ms so a test sees whether it still
    runs."""
    path = os.path.join(marker_dir, str(os.getpid()))
    while True:
        with open(path, "a") as handle:
            handle.write(".")
        time.sleep(0.05)


@app.task(retry=False)
def runs_until_killed(marker_dir: str) -> None:
    """Never returns on its own (nor checks should_abort()); marks each 50 ms that it runs."""
    spins_past_its_timeout.func(marker_dir)


@app.task(retry=False)
def sleeps(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


_setup_done = False


def mark_setup_done() -> None:
    """The app's `process_setup` in one test: what a framework's setup would be."""
    global _setup_done
    _setup_done = True


@app.task(retry=False)
def setup_was_done() -> bool:
    return _setup_done


@app.task(pass_context=True,
          retry=pgqueue.RetryPolicy(max_attempts=2, backoff="fixed", base_delay=0))
def slow_first_attempt(context: pgqueue.JobContext, seconds: float) -> int:
    """Sleeps through its first attempt (long enough to be killed in), returns at once after."""
    if context.attempt == 1:
        time.sleep(seconds)
    return os.getpid()
