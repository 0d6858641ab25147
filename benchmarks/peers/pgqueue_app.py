"""pgqueue as a user writes it: an App and a no-op task (`pgqueue --app ... worker`)."""

from __future__ import annotations

import os
import time

from benchmarks.peers.cpu_work import burn
from benchmarks.record import record
from pgqueue import App

app = App()  # PGQUEUE_DSN
# Proves the CI gate works: BENCH_SLOWDOWN_US=N burns N µs of CPU per job on the worker's
# loop, as a slower engine would (docs/benchmarks.md, "The CI regression gate").
_SLOWDOWN_S = float(os.environ.get("BENCH_SLOWDOWN_US", "0")) / 1e6


@app.task(name="noop")
async def noop(i: int) -> None:
    record(i)
    if _SLOWDOWN_S:
        until = time.perf_counter() + _SLOWDOWN_S
        while time.perf_counter() < until:
            pass


@app.task(name="noop_sync")
def noop_sync(i: int) -> None:
    record(i)


@app.task(name="cpu")
def cpu(i: int) -> None:
    """The pool benchmark's CPU-bound job (benchmarks/pools.py): ~20 ms of pure Python."""
    burn()
    record(i)
