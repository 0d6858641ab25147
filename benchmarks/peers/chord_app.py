"""pgqueue's side of the chord benchmark (benchmarks/chord.py): a header task that records its
run and returns its index, and a callback that records its run, with how many results it got
and whether they were in order."""

from __future__ import annotations

import json
import sys
import time

from benchmarks.peers.chord_record import record_callback
from benchmarks.record import record
from pgqueue import App, chord

app = App()  # PGQUEUE_DSN


@app.task(name="part")
async def part(i: int) -> int:
    record(i)
    return i


@app.task(name="merge")
async def merge(results: list[int]) -> int:
    record_callback(results)
    return len(results)


def main(argv: list[str]) -> None:
    """`setup`, `plain N` (defer_many) or `chord N`: prints the start time."""
    command, count = argv[0], int(argv[1]) if len(argv) > 1 else 0
    result: dict[str, float] = {}
    if command == "setup":
        app.migrate()
    elif command == "plain":
        result["started"] = time.time()
        part.defer_many([(i,) for i in range(count)])
        result["enqueued"] = time.time()
    elif command == "chord":
        result["started"] = time.time()
        chord([part.s(i) for i in range(count)], merge.s()).defer()
        result["enqueued"] = time.time()
    app.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
