"""Celery with a Redis broker (celery venv).

Configured for throughput as Celery's optimizing guide advises for many short tasks: results
ignored, a large prefetch, gossip/mingle/heartbeat off, a thread pool (one worker process with
N threads, like the other systems' concurrency). Bulk enqueue publishes every message through
one acquired producer (the documented way to send many messages).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from celery import Celery

from benchmarks.peers import producer
from benchmarks.peers.cpu_work import burn
from benchmarks.record import record

app = Celery("bench", broker=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/13"))
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=32,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(i: int) -> None:
    record(i)


@app.task(name="cpu")
def cpu(i: int) -> None:
    """The pool benchmark's CPU-bound job (benchmarks/pools.py): ~20 ms of pure Python."""
    burn()
    record(i)


task = cpu if os.environ.get("BENCH_TASK") == "cpu" else noop


class CeleryPeer:
    def setup(self) -> None:
        pass

    def template(self) -> None:
        return None

    def defer_one(self, index: int) -> None:
        task.delay(index)

    def defer_batch(self, indices: Sequence[int]) -> None:
        with app.producer_or_acquire() as publisher:
            for i in indices:
                task.apply_async((i,), producer=publisher)


if __name__ == "__main__":
    producer.main(CeleryPeer())
