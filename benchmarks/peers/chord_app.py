"""pgqueue's side of the chord benchmark (benchmarks/chord.py): a header task that returns its
index and a callback that checks it received every result, in order, and records its run."""

from __future__ import annotations

import os

from pgqueue import App

app = App()  # PGQUEUE_DSN


@app.task(name="part")
async def part(i: int) -> int:
    return i


@app.task(name="merge")
async def merge(results: list[int]) -> dict[str, object]:
    """The callback: one line per run in BENCH_RECORD_DIR, so the harness counts its runs."""
    in_order = results == list(range(len(results)))
    with open(os.path.join(os.environ["BENCH_RECORD_DIR"], f"merge-{os.getpid()}.txt"),
              "a") as handle:
        handle.write(f"{len(results)} {int(in_order)}\n")
    return {"results": len(results), "in_order": in_order}
