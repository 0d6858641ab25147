"""The claim before and after a change to it, in one run: `python -m benchmarks.claim_filter
--base REF` (default: main).

Two databases on one server get the same jobs; one has the schema and claim query of the
engine at REF (a frozen copy, benchmarks.pin), the other the working tree's. Claims of 10 (the
`claim_jobs` statement, prepared, on one connection per variant, rolled back so every claim
sees the same table) alternate round-robin between the variants, so load from other users of
the machine falls on all of them alike. Printed: median and p95 microseconds per claim and
each variant's median against the base's.

Variants: every queue / one named queue, each with the worker passing no task filter and its
task names (20 of them: the claim's filter since migration 0015); and, after it, the same
claims with 1,000 and 10,000 due jobs of a task the worker lacks sorted ahead of its own (what
jobs nobody serves cost each claim).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import pg, pin
from pgqueue.migrate import migration_files
from pgqueue.queries import _parse, query

QUEUED = 10_000
BATCH = 10
TASKS = [f"app.task_{n}" for n in range(19)] + ["t"]


def _base(ref: str) -> tuple[list[str], str, str]:
    """The base engine's migrations and claim query, and its commit."""
    directory, sha = pin.engine_snapshot(ref)
    files = sorted((directory / "migrations_sql").glob("[0-9][0-9][0-9][0-9]_*.sql"))
    queries = _parse((directory / "pgqueue" / "sql" / "queries.sql").read_text())
    return [path.read_text() for path in files], queries["claim_jobs"], sha


def _seed(dsn: str, migrations: list[str]) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for migration in migrations:
            conn.execute(migration.encode())
        conn.execute("INSERT INTO pgqueue.jobs (task_name, queue, priority) "
                     "SELECT 't', 'bench', n %% 3 FROM generate_series(1, %s) n", (QUEUED,))
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
        return conn.execute("INSERT INTO pgqueue.workers (name, hostname, pid, concurrency) "
                            "VALUES ('bench', 'h', 1, 10) RETURNING id").fetchone()[0]


def _claimer(dsn: str, sql: str, params: dict[str, Any]) -> Callable[[], float]:
    conn = psycopg.connect(dsn, prepare_threshold=0)

    def claim() -> float:
        started = time.perf_counter()
        claimed = conn.execute(sql, params).fetchall()
        elapsed = time.perf_counter() - started
        conn.rollback()
        assert len(claimed) == BATCH, len(claimed)
        return elapsed * 1e6

    return claim


def _measure(claimers: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    for claim in claimers.values():
        for _ in range(50):  # plans prepared, caches warm
            claim()
    samples: dict[str, list[float]] = {label: [] for label in claimers}
    for _ in range(rounds):
        for label, claim in claimers.items():
            samples[label].append(claim())
    return samples


def _report(samples: dict[str, list[float]], base_label: str) -> None:
    base = statistics.median(samples[base_label])
    print(f"{'variant':<58} {'median µs':>10} {'p95 µs':>8} {'vs base':>8}")
    for label, values in samples.items():
        median = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{label:<58} {median:>10.0f} {p95:>8.0f} {median / base:>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="git ref of the engine to compare with")
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    base_migrations, base_sql, sha = _base(args.base)
    with pg.server() as admin:
        base_dsn = pg.fresh_database(admin, "bench_claim_base")
        new_dsn = pg.fresh_database(admin, "bench_claim_new")
        try:
            base_worker = _seed(base_dsn, base_migrations)
            new_worker = _seed(new_dsn, [m.sql for m in migration_files()])
            print(f"base: {args.base} = {sha[:12]}; new: the working tree "
                  f"({Path.cwd().name}); {QUEUED:,} queued jobs, claims of {BATCH}, "
                  f"{args.rounds} rounds")
            new_sql = query("claim_jobs")
            claimers: dict[str, Callable[[], float]] = {}
            for served, queues in (("every queue", None), ("queue 'bench'", ["bench"])):
                params = {"worker_id": base_worker, "limit": BATCH, "queues": queues}
                claimers[f"base, {served}"] = _claimer(base_dsn, base_sql, params)
                new = {**params, "worker_id": new_worker}
                claimers[f"new, {served}, any task"] = _claimer(
                    new_dsn, new_sql, {**new, "tasks": None})
                claimers[f"new, {served}, its 20 tasks"] = _claimer(
                    new_dsn, new_sql, {**new, "tasks": TASKS})
            _report(_measure(claimers, args.rounds), "base, every queue")
            for unserved in (1_000, 10_000):
                pg.execute(new_dsn, "INSERT INTO pgqueue.jobs (task_name, queue, priority) "
                                    "SELECT 'stranger', 'bench', 5 FROM generate_series(1, "
                                    f"{unserved - (1_000 if unserved > 1_000 else 0)})",
                           "VACUUM ANALYZE pgqueue.jobs")
                print(f"\nwith {unserved:,} due jobs of a task the worker lacks ahead of its own")
                ahead = {
                    f"new, {served}, its 20 tasks": _claimer(new_dsn, new_sql, {
                        "worker_id": new_worker, "limit": BATCH, "queues": queues,
                        "tasks": TASKS})
                    for served, queues in (("every queue", None), ("queue 'bench'", ["bench"]))}
                samples = _measure(ahead, max(100, args.rounds // 10))
                _report(samples, next(iter(ahead)))
        finally:
            pg.drop_database(admin, "bench_claim_base")
            pg.drop_database(admin, "bench_claim_new")


if __name__ == "__main__":
    main()
