"""What a benchmark task does: write (job index, time.time()) to a per-process file, and nothing
else. Standard library only, because every peer's venv imports it.

Each record is a fixed-width line, so the harness counts finished jobs from file sizes alone
(no parsing, no database query while the worker runs) and the write is one `os.write` on an
O_APPEND descriptor: atomic between threads, a few microseconds, far below any queue's per-job
cost. The producers write the commit time of each job to `enq-*` files in the same format, so
latency is `task_time[i] - commit_time[i]` on one clock (same machine).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

RECORD_BYTES = 27  # b"%08d %.6f\n" with a 10-digit epoch: 8 + 1 + 17 + 1
_fds: dict[tuple[int, str], int] = {}


def _fd(prefix: str) -> int:
    key = (os.getpid(), prefix)  # per pid: a forked pool child must not share its parent's fd
    fd = _fds.get(key)
    if fd is None:
        directory = os.environ["BENCH_RECORD_DIR"]
        path = os.path.join(directory, f"{prefix}-{os.getpid()}-{id(_fds)}.rec")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fds[key] = fd
    return fd


def record(index: int) -> None:
    """The no-op task's only line: when job `index` started running."""
    os.write(_fd("run"), b"%08d %.6f\n" % (index, time.time()))


def record_enqueued(pairs: Iterable[tuple[int, float]]) -> None:
    """Producers: commit times, written after the measured loop so they cost it nothing."""
    os.write(_fd("enq"), b"".join(b"%08d %.6f\n" % (i, t) for i, t in pairs))


def count(directory: Path, prefix: str = "run") -> int:
    return sum(p.stat().st_size for p in directory.glob(f"{prefix}-*.rec")) // RECORD_BYTES


def read(directory: Path, prefix: str = "run") -> Iterator[tuple[int, float]]:
    for path in directory.glob(f"{prefix}-*.rec"):
        for line in path.read_bytes().splitlines():
            index, stamp = line.split()
            yield int(index), float(stamp)
