"""The producer commands every peer module shares (standard library only).

    setup                    create the system's schema
    template                 enqueue one job (index 0); prints its id, the harness clones it
    single N START           N single enqueues in a loop (after a warm-up), timed
    bulk N START             one bulk enqueue of N jobs, timed
    spaced COUNT GAP START   one job every GAP seconds, commit times recorded
    paced RATE SECONDS START a fixed rate, in 10 ms ticks, commit times recorded
    seed N START             enqueue N jobs (only for systems without a table to clone into)

The last stdout line is a JSON object. Commit times are taken right after the enqueue call
returns (the commit has been acknowledged) and written to the record directory after the loop.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from benchmarks.record import record_enqueued

WARMUP = 20
TICK_S = 0.01


class Peer(Protocol):
    def setup(self) -> None: ...
    def template(self) -> Any: ...
    def defer_one(self, index: int) -> None: ...
    def defer_batch(self, indices: Sequence[int]) -> None: ...


def _timed(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(peer: Peer, argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    command, numbers = args[0], [float(a) for a in args[1:]]
    result: dict[str, Any] = {}
    if command == "setup":
        peer.setup()
    elif command == "template":
        result["id"] = peer.template()
    elif command == "single":
        count, start = int(numbers[0]), int(numbers[1])
        for i in range(WARMUP):
            peer.defer_one(start + count + i)

        def loop() -> None:
            for i in range(start, start + count):
                peer.defer_one(i)

        result["seconds"] = _timed(loop)
        result["jobs"] = count
    elif command == "bulk":
        count, start = int(numbers[0]), int(numbers[1])
        peer.defer_batch([start + count])  # warm-up: connect, prepare
        result["seconds"] = _timed(lambda: peer.defer_batch(range(start, start + count)))
        result["jobs"] = count
    elif command == "seed":
        count, start = int(numbers[0]), int(numbers[1])
        batch = 5000
        for first in range(start, start + count, batch):
            peer.defer_batch(range(first, min(first + batch, start + count)))
        result["jobs"] = count
    elif command == "spaced":
        count, gap, start = int(numbers[0]), numbers[1], int(numbers[2])
        committed: list[tuple[int, float]] = []
        began = time.perf_counter()
        for n, i in enumerate(range(start, start + count)):
            peer.defer_one(i)
            committed.append((i, time.time()))
            pause = began + (n + 1) * gap - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        record_enqueued(committed)
        result["jobs"] = count
    elif command == "paced":
        rate, seconds, start = numbers[0], numbers[1], int(numbers[2])
        committed = []
        sent = 0
        began = time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds:
            due = int(rate * elapsed) - sent
            if due > 0:
                indices = range(start + sent, start + sent + due)
                if due == 1:
                    peer.defer_one(indices[0])
                else:
                    peer.defer_batch(indices)
                now = time.time()
                committed.extend((i, now) for i in indices)
                sent += due
            pause = TICK_S - (time.perf_counter() - began - elapsed)
            if pause > 0:
                time.sleep(pause)
        result["seconds"] = time.perf_counter() - began
        result["jobs"] = sent
        record_enqueued(committed)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result), flush=True)
