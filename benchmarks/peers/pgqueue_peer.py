"""pgqueue producer: `Task.defer` in a loop, `Task.defer_many` for bulk (project venv)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from benchmarks.peers import producer
from benchmarks.peers.pgqueue_app import app, cpu, noop, noop_sync

task = {"sync": noop_sync, "cpu": cpu}.get(os.environ.get("BENCH_TASK", ""), noop)


class PgqueuePeer:
    def setup(self) -> None:
        app.migrate()

    def template(self) -> int:
        return task.defer(0)

    def defer_one(self, index: int) -> None:
        task.defer(index)

    def defer_batch(self, indices: Sequence[int]) -> None:
        task.defer_many([(i,) for i in indices])


if __name__ == "__main__":
    producer.main(PgqueuePeer())
