"""Celery's side of the chord benchmark (celery venv): Redis as broker and result backend, the
setup Celery's documentation recommends for chords (the Redis backend counts the header's
results with an atomic counter, no polling `chord_unlock` task).

Worker settings as in benchmarks/peers/celery_peer.py (large prefetch, a thread pool, gossip,
mingle and heartbeat off), except that results are stored: a chord needs them.

    python -m benchmarks.peers.chord_celery flush 0         empty its Redis database
    python -m benchmarks.peers.chord_celery ready WORKERS   wait until WORKERS workers answer
    python -m benchmarks.peers.chord_celery plain N         N `part` jobs; prints the start time
    python -m benchmarks.peers.chord_celery chord N         a chord of N parts, then `merge`
"""

from __future__ import annotations

import json
import os
import sys
import time

from celery import Celery, chord

from benchmarks.peers.chord_record import record_callback
from benchmarks.record import record

URL = os.environ.get("BENCH_CELERY_REDIS", "redis://127.0.0.1:6379/14")
app = Celery("chordbench", broker=URL, backend=URL)
app.conf.update(
    worker_prefetch_multiplier=32,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=3600,
)


@app.task(name="part")
def part(i: int) -> int:
    record(i)
    return i


@app.task(name="merge")
def merge(results: list[int]) -> int:
    record_callback(results)
    return len(results)


def main(argv: list[str]) -> None:
    command, count = argv[0], int(argv[1])
    result: dict[str, float] = {}
    if command == "flush":
        app.backend.client.flushdb()
    elif command == "ready":
        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5)) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"fewer than {count} celery workers answer")
    elif command == "plain":
        result["started"] = time.time()
        with app.producer_or_acquire() as publisher:
            for i in range(count):
                part.apply_async((i,), producer=publisher)
        result["enqueued"] = time.time()
    elif command == "chord":
        result["started"] = time.time()
        chord(part.s(i) for i in range(count))(merge.s())
        result["enqueued"] = time.time()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
