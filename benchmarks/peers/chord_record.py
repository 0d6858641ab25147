"""What a chord callback writes, in every system's venv (standard library only): one line per
run, `<time> <results> <in order 0/1>`, in BENCH_RECORD_DIR/callback-<pid>.txt. The harness
counts the lines (exactly one run) and takes the chord's end from the time."""

from __future__ import annotations

import os
import time
from pathlib import Path


def record_callback(results: list[int]) -> None:
    in_order = results == list(range(len(results)))
    line = f"{time.time():.6f} {len(results)} {int(in_order)}\n"
    path = Path(os.environ["BENCH_RECORD_DIR"]) / f"callback-{os.getpid()}.txt"
    with path.open("a") as handle:
        handle.write(line)


def callback_runs(directory: Path) -> list[tuple[float, int, bool]]:
    """Every callback run recorded in `directory`: (time, results, in order)."""
    runs = []
    for path in directory.glob("callback-*.txt"):
        for line in path.read_text().splitlines():
            stamp, count, in_order = line.split()
            runs.append((float(stamp), int(count), in_order == "1"))
    return sorted(runs)
