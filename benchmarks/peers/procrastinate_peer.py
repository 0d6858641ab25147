"""procrastinate: an App on PsycopgConnector and an async no-op task (procrastinate venv).

Worker: `procrastinate --app benchmarks.peers.procrastinate_peer.app worker -c N` with its
defaults (LISTEN/NOTIFY on, jobs kept). Bulk enqueue: `Task.batch_defer`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import procrastinate

from benchmarks.peers import producer
from benchmarks.record import record

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_DSN"]))


@app.task(name="noop")
async def noop(i: int) -> None:
    record(i)


class ProcrastinatePeer:
    def setup(self) -> None:
        app.schema_manager.apply_schema()

    def template(self) -> int:
        return noop.defer(i=0)

    def defer_one(self, index: int) -> None:
        noop.defer(i=index)

    def defer_batch(self, indices: Sequence[int]) -> None:
        noop.batch_defer(*({"i": i} for i in indices))


if __name__ == "__main__":
    with app.open():
        producer.main(ProcrastinatePeer())
