"""What migration 0024 (dependency edges go with their child) costs jobs without parents: server
CPU and wall time of deleting 100,000 plain finished jobs, on the schema before 0024 and after
it, by retention (pgqueue.prune_batch, 5,000 a transaction, as `pgqueue prune` does) and by
`--delete-jobs` (the completer's delete_finished, 1,000 ids a statement). Then the trigger
alone, where nothing else hides it: one bare `DELETE` of 100,000 rows on 0024's schema with its
trigger enabled and disabled (in rolled-back transactions, so the same rows serve every turn).

    python -m benchmarks.delete_cost [--dsn postgresql://127.0.0.1:5432/postgres] [--rounds 5]

Backend CPU is read from /proc/<pid>/schedstat, so the server must run on this machine. The
variants take turns within each round (each round starting with the next one) and the median of
the rounds is reported, so load from other users of the machine hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import psycopg

from benchmarks import pg
from pgqueue.migrate import migration_files
from pgqueue.queries import query

VARIANTS = {"before 0024": "0023", "0024": "0024"}
JOBS = 100_000
ACK_BATCH = 1000
SEED = """INSERT INTO pgqueue.jobs (task_name, state, attempts, started_at, finished_at,
                                    claim_token)
SELECT 'bench.noop', %s::pgqueue.job_state, 1, now() - interval '10 days',
       CASE WHEN %s = 'succeeded' THEN now() - interval '10 days' END, gen_random_uuid()
FROM generate_series(1, %s)"""


@contextmanager
def _database(admin_dsn: str, index: int, last: str) -> Iterator[str]:
    name = f"pgq_delete_cost_{os.getpid()}_{index}"
    dsn = pg.fresh_database(admin_dsn, name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for migration in migration_files():
                if migration.name[:4] <= last:
                    conn.execute(migration.sql.encode())
        yield dsn
    finally:
        pg.drop_database(admin_dsn, name)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0]) / 1e9


class Variant:
    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.prune: list[tuple[float, float]] = []
        self.delete: list[tuple[float, float]] = []

    def _measure(self, run: Callable[[], int], into: list[tuple[float, float]]) -> None:
        pid = self.conn.info.backend_pid
        cpu, wall = _cpu_seconds(pid), time.perf_counter()
        assert run() == JOBS
        into.append((_cpu_seconds(pid) - cpu, time.perf_counter() - wall))

    def _prune_all(self) -> int:
        deleted = 0
        while True:
            (batch,) = self.conn.execute(
                "SELECT pgqueue.prune_batch(interval '1 day', batch_size => 5000)").fetchone()
            deleted += batch
            if batch < 5000:
                return deleted

    def _delete_all(self) -> int:
        rows = self.conn.execute("SELECT id, claim_token FROM pgqueue.jobs ORDER BY id").fetchall()
        deleted = 0
        for start in range(0, len(rows), ACK_BATCH):
            chunk = rows[start:start + ACK_BATCH]
            deleted += len(self.conn.execute(query("delete_finished"), {
                "ids": [r[0] for r in chunk], "tokens": [r[1] for r in chunk]}).fetchall())
        return deleted

    def round(self) -> None:
        self.conn.execute(SEED, ("succeeded", "succeeded", JOBS))
        self.conn.execute("VACUUM ANALYZE pgqueue.jobs")
        self._measure(self._prune_all, self.prune)
        self.conn.execute(SEED, ("running", "running", JOBS))
        self.conn.execute("VACUUM ANALYZE pgqueue.jobs")
        self._measure(self._delete_all, self.delete)
        self.conn.execute("VACUUM pgqueue.jobs")


def trigger_alone(conn: psycopg.Connection, rounds: int) -> dict[bool, list[float]]:
    """Server CPU of one bare DELETE of JOBS rows, with 0024's trigger enabled or disabled."""
    conn.execute(SEED, ("succeeded", "succeeded", JOBS))
    conn.execute("VACUUM ANALYZE pgqueue.jobs")
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for turn in range(rounds * 3):
        for enabled in (True, False) if turn % 2 else (False, True):
            with conn.transaction(force_rollback=True):
                if not enabled:
                    conn.execute("ALTER TABLE pgqueue.jobs "
                                 "DISABLE TRIGGER jobs_drop_settled_edges_on_delete")
                before = _cpu_seconds(conn.info.backend_pid)
                conn.execute("DELETE FROM pgqueue.jobs")
                cpu[enabled].append(_cpu_seconds(conn.info.backend_pid) - before)
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.delete_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get(
        "PGQUEUE_BENCH_DSN", "postgresql://127.0.0.1:5432/postgres"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with ExitStack() as stack:
        variants = {label: Variant(stack.enter_context(_database(args.dsn, i, last)))
                    for i, (label, last) in enumerate(VARIANTS.items())}
        order = list(variants.values())
        for turn in range(args.rounds):  # each round starts with the next variant: no order bias
            for variant in order[turn % len(order):] + order[:turn % len(order)]:
                variant.round()
        alone = trigger_alone(variants["0024"].conn, args.rounds)
        for variant in order:
            variant.conn.close()
    base = variants["before 0024"]
    print(f"{JOBS:,} plain jobs, median of {args.rounds} rounds")
    print(f"{'schema':12} {'prune: CPU (min-max)':>23} {'wall':>8} {'vs before':>10}   "
          f"{'delete_finished: CPU (min-max)':>30} {'wall':>8} {'vs before':>10}")
    for label, variant in variants.items():
        line = f"{label:12}"
        for mine, theirs in ((variant.prune, base.prune), (variant.delete, base.delete)):
            cpu, wall = (statistics.median(v) for v in zip(*mine, strict=True))
            base_cpu = statistics.median(v for v, _ in theirs)
            change = (cpu / base_cpu - 1) * 100
            spread = f"{min(v for v, _ in mine) * 1e3:.0f}-{max(v for v, _ in mine) * 1e3:.0f}"
            line += f" {cpu * 1e3:8.0f} ms ({spread:>9}) {wall * 1e3:5.0f} ms {change:+8.1f} %  "
        print(line)
    enabled, disabled = (statistics.median(alone[flag]) for flag in (True, False))
    print(f"bare DELETE of {JOBS:,} rows on 0024: trigger enabled {enabled * 1e3:.1f} ms, "
          f"disabled {disabled * 1e3:.1f} ms ({(enabled / disabled - 1) * 100:+.1f} %, "
          f"{(enabled - disabled) / JOBS * 1e9:.0f} ns a row), median of {len(alone[True])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
