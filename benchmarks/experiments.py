"""Where pgqueue's time goes: the measurements behind the engine recommendations in
docs/benchmarks.md. Each experiment isolates one cost against the raw reference in the same
process, on a fresh database, so the differences (not the absolute numbers) are the finding.

    python -m benchmarks.experiments enqueue      # single defer: Python, trigger, pool
    python -m benchmarks.experiments bulk         # defer_many: Python encode vs SQL vs COPY
    python -m benchmarks.experiments claims       # transactions per job while a worker drains
    python -m benchmarks.experiments plans        # the claim on stale statistics: rows read
    python -m benchmarks.experiments producers    # concurrent enqueuers: does NOTIFY serialise?
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import metrics, pg, progress, stats
from benchmarks.systems import System, all_systems


def _best(call: Callable[[], None], n: int, reps: int = 3) -> float:
    """Jobs/s of `call` run n times, best of reps (noise on a shared machine only slows)."""
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            call()
        rates.append(n / (time.perf_counter() - start))
    return max(rates)


def _interleaved(variants: dict[str, Callable[[], None]], n: int, rounds: int = 5,
                 between: Callable[[str], None] | None = None) -> dict[str, float]:
    """Best-of-rounds jobs/s per variant, the variants taking turns within each round, so a
    burst of load from other users of the machine hits them all alike."""
    best: dict[str, float] = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for label, call in variants.items():
            if between is not None:
                between(label)
            best[label] = max(best[label], _best(call, n, reps=1))
    return best


def _systems(admin_dsn: str, *names: str) -> dict[str, System]:
    chosen = {s.name: s for s in all_systems() if s.name in names}
    for system in chosen.values():
        system.prepare(admin_dsn)
    return chosen


def enqueue(admin_dsn: str, n: int = 1500) -> dict[str, Any]:
    import os


    systems = _systems(admin_dsn, "pgqueue", "raw")
    dsn = systems["pgqueue"].dsn
    os.environ["PGQUEUE_DSN"] = dsn
    from benchmarks.peers.pgqueue_app import app, noop

    conn = psycopg.connect(dsn, autocommit=True)
    raw = psycopg.connect(systems["raw"].dsn, autocommit=True)
    insert = noop._insert_call((1,), {})  # the engine's own query and parameters
    sql, params = insert.sql, insert.params
    counter = iter(range(10**9))
    conn.execute("""
        CREATE FUNCTION pgqueue.bench_notify_plain() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('pgqueue_jobs', ''); RETURN NULL; END $$;""")
    triggers = {"insert_job SQL, trigger off": "off",
                "insert_job SQL + pg_notify in the statement, trigger off": "off",
                "insert_job SQL, plain statement trigger (no transition table)": "plain"}

    def set_trigger(label: str) -> None:
        wanted = triggers.get(label, "on")
        conn.execute("DROP TRIGGER IF EXISTS bench_plain ON pgqueue.jobs")
        conn.execute("ALTER TABLE pgqueue.jobs "
                     + ("ENABLE" if wanted == "on" else "DISABLE")
                     + " TRIGGER jobs_notify_after_insert")
        if wanted == "plain":
            conn.execute("CREATE TRIGGER bench_plain AFTER INSERT ON pgqueue.jobs "
                         "FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.bench_notify_plain()")

    notify_in_statement = ("WITH job AS (" + sql.strip().rstrip(";") + ") "
                           "SELECT id, pg_notify('pgqueue_jobs', '') FROM job")
    out: dict[str, Any] = _interleaved({
        "raw INSERT into raw_jobs": lambda: raw.execute(
            "INSERT INTO raw_jobs (args) VALUES (%s::jsonb) RETURNING id",
            (f"[{next(counter)}]",)).fetchone(),
        "Task.defer (pool, validation, trigger)": lambda: noop.defer(1),
        "insert_job SQL, one connection, trigger on": lambda: conn.execute(sql, params).fetchone(),
        "insert_job SQL, trigger off": lambda: conn.execute(sql, params).fetchone(),
        "insert_job SQL + pg_notify in the statement, trigger off": lambda: conn.execute(
            notify_in_statement, params).fetchone(),
        "insert_job SQL, plain statement trigger (no transition table)": lambda: conn.execute(
            sql, params).fetchone(),
    }, n // 3, between=set_trigger)
    set_trigger("on")
    out["Task._insert_call only (no database)"] = _best(lambda: noop._insert_call((1,), {}), n)
    out["pool checkout + cursor + SELECT 1 via Database.run"] = _best(
        lambda: app.db.run(_Noop()), n)
    out["SELECT 1 on one connection"] = _best(lambda: conn.execute("SELECT 1").fetchone(), n)
    conn.close()
    raw.close()
    app.close()
    return out


class _Noop:
    """A Call-alike running SELECT 1 (pool/cursor overhead without any pgqueue query)."""

    query_name = "noop"
    params: dict[str, Any] = {}  # noqa: RUF012
    sql = "SELECT 1 AS one"
    tuples = False

    @staticmethod
    def decode(rows: list[dict[str, Any]]) -> None:
        return None


def bulk(admin_dsn: str, n: int = 50_000) -> dict[str, Any]:
    import os

    from pgqueue.queries import query

    systems = _systems(admin_dsn, "pgqueue", "raw")
    dsn = systems["pgqueue"].dsn
    os.environ["PGQUEUE_DSN"] = dsn
    from benchmarks.peers.pgqueue_app import app, noop

    items = [(i,) for i in range(n)]
    out: dict[str, Any] = {}

    def timed(label: str, call: Callable[[], Any]) -> None:
        pg.execute(dsn, "TRUNCATE pgqueue.jobs")
        pg.execute(systems["raw"].dsn, "TRUNCATE raw_jobs")
        start = time.perf_counter()
        call()
        out[label] = n / (time.perf_counter() - start)

    noop.defer_many(items[:10])
    timed("Task.defer_many (all of it)", lambda: noop.defer_many(items))
    timed("defer_many's Python part only (signature check + JSON encode x2 per job)",
          lambda: [(noop._check_signature(a, {}), noop.app.max_payload_bytes) for a in items]
          and None)
    from pgqueue.validation import encode_arguments

    timed("encode_arguments only", lambda: [encode_arguments(a, {}, max_bytes=10**6)
                                            for a in items])
    timed("json.dumps only", lambda: [json.dumps(list(a)) for a in items])
    args = [f"[{i}]" for i in range(n)]
    sql = query("insert_jobs_many")
    params = {"task_name": "noop", "queue": "default", "args": args, "kwargs": ["{}"] * n,
              "priority": 0, "run_at": None, "delay": 0.0, "max_attempts": 3,
              "timeout_seconds": None}
    with psycopg.connect(dsn, autocommit=True) as conn:
        timed("insert_jobs_many SQL only (unnest, RETURNING id)",
              lambda: conn.execute(sql, params).fetchall())
        no_returning = sql.replace("RETURNING id;", "").rstrip().rstrip(";")
        timed("insert_jobs_many SQL without RETURNING",
              lambda: conn.execute(no_returning, params))

        def copy_pgqueue() -> None:
            with conn.cursor().copy(
                    "COPY pgqueue.jobs (task_name, args) FROM STDIN") as copy:
                for a in args:
                    copy.write_row(("noop", a))

        timed("COPY into pgqueue.jobs (its indexes, checks and trigger)", copy_pgqueue)
        # What each per-row cost of the table adds: drop them one by one (this throwaway
        # database only) and COPY again.
        conn.execute("DROP INDEX pgqueue.jobs_queue_claim_order_idx")
        timed("  ... without jobs_queue_claim_order_idx", copy_pgqueue)
        conn.execute("DROP INDEX pgqueue.jobs_claim_order_idx")
        timed("  ... and without jobs_claim_order_idx", copy_pgqueue)
        checks = [r[0] for r in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'pgqueue.jobs'::regclass "
            "AND contype = 'c'")]
        for name in checks:
            conn.execute(f'ALTER TABLE pgqueue.jobs DROP CONSTRAINT "{name}"')
        timed(f"  ... and without its {len(checks)} CHECK constraints", copy_pgqueue)
        conn.execute("ALTER TABLE pgqueue.jobs DISABLE TRIGGER USER")
        timed("  ... and without its triggers", copy_pgqueue)

    def copy_raw() -> None:
        with psycopg.connect(systems["raw"].dsn, autocommit=True) as conn2, \
                conn2.cursor().copy("COPY raw_jobs (args) FROM STDIN") as copy:
            for a in args:
                copy.write_row((a,))

    timed("COPY into raw_jobs (reference)", copy_raw)
    app.close()
    return out


def claims(admin_dsn: str, jobs: int = 10_000) -> dict[str, Any]:
    """Transactions the database commits per job while one worker drains a backlog (from
    pg_stat_database: claim + completion + heartbeat statements all count)."""
    systems = _systems(admin_dsn, "pgqueue", "raw", "procrastinate")
    out: dict[str, Any] = {}
    for name, concurrency in (("pgqueue", 1), ("pgqueue", 10), ("pgqueue", 100),
                              ("raw", 10), ("raw", 100), ("procrastinate", 10)):
        system = systems[name]
        system.reset()
        system.seed(jobs)
        before = _commits(system)
        result = metrics.process(system, jobs, concurrency, 60)
        time.sleep(0.5)  # let the stats collector catch up
        out[f"{name} c={concurrency}"] = {
            "jobs_per_s": round(result["per_s"]),
            "commits_per_job": round((_commits(system) - before) / result["jobs"], 3)}
    return out


def producers(admin_dsn: str, per_thread: int = 400, threads: int = 4) -> dict[str, Any]:
    """Several producers inserting at once (as several web processes would), each on its own
    connection: does the insert-trigger's NOTIFY serialise their commits? (Postgres takes a
    cluster-wide lock in PreCommit_Notify and holds it through the commit record's flush.)"""
    import os
    import threading

    systems = _systems(admin_dsn, "pgqueue", "raw")
    os.environ["PGQUEUE_DSN"] = systems["pgqueue"].dsn
    from benchmarks.peers.pgqueue_app import noop

    insert = noop._insert_call((1,), {})
    sql, params = insert.sql, insert.params
    raw_sql = "INSERT INTO raw_jobs (args) VALUES ('[1]') RETURNING id"

    def rate(dsn: str, statement: str, args: Any, count: int) -> float:
        conns = [psycopg.connect(dsn, autocommit=True) for _ in range(count)]

        def loop(conn: psycopg.Connection) -> None:
            for _ in range(per_thread):
                conn.execute(statement, args).fetchone()

        workers = [threading.Thread(target=loop, args=(c,)) for c in conns]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        for c in conns:
            c.close()
        return count * per_thread / elapsed

    pgq = systems["pgqueue"].dsn
    out: dict[str, Any] = {}
    for count in (1, threads):
        best: dict[str, float] = {}
        for _ in range(3):
            for label, dsn, statement, args, trigger in (
                    ("raw INSERT", systems["raw"].dsn, raw_sql, None, None),
                    ("insert_job, trigger on", pgq, sql, params, "ENABLE"),
                    ("insert_job, trigger off", pgq, sql, params, "DISABLE")):
                if trigger:
                    pg.execute(pgq, f"ALTER TABLE pgqueue.jobs {trigger} TRIGGER "
                                    "jobs_notify_after_insert")
                best[label] = max(best.get(label, 0.0), rate(dsn, statement, args, count))
        out[f"{count} producer(s)"] = {k: round(v) for k, v in best.items()}
    pg.execute(pgq, "ALTER TABLE pgqueue.jobs ENABLE TRIGGER jobs_notify_after_insert")
    return out


def _commits(system: System) -> int:
    rows = pg.execute(system.dsn, "SELECT pg_stat_force_next_flush()",
                      "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    return int(rows[0][0])


def plans(admin_dsn: str, waiting: int = 1_000_000, finished: int = 1_000_000) -> dict[str, Any]:
    """The claim (`claim_jobs`, LIMIT 10) on statistics taken while the table was empty, as a
    burst leaves them: every queue (queues NULL) and one named queue. The rows are chosen
    inside pgqueue.claimable_job_ids, whose plans EXPLAIN of the claim does not show, so the
    rows of pgqueue.jobs actually read are counted by the server (pg_stat_xact_all_tables,
    the claim's own transaction) beside its timing and outer plan."""
    from pgqueue.queries import query

    system = _systems(admin_dsn, "pgqueue")["pgqueue"]
    sql = query("claim_jobs")
    out: dict[str, Any] = {}
    for label, n_waiting, n_finished in (("10k waiting", 10_000, 0),
                                         (f"{waiting:,} waiting", waiting, 0),
                                         (f"10k waiting + {finished:,} finished", 10_000,
                                          finished)):
        system.reset()
        pg.execute(system.dsn, "ANALYZE pgqueue.jobs")  # statistics of the empty table
        system.seed(n_finished, start=50_000_000, finished=True)
        system.seed(n_waiting)
        for served, queues in (("every queue", None), ("queue 'default'", ["default"])):
            with psycopg.connect(system.dsn) as conn:
                worker_id = conn.execute(
                    "INSERT INTO pgqueue.workers (name, hostname, pid, concurrency) "
                    "VALUES ('x', 'x', 1, 10) RETURNING id").fetchone()[0]
                conn.commit()
                timings, reads = [], []
                plan_text = ""
                for _ in range(5):
                    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql,
                                        {"worker_id": worker_id, "limit": 10,
                                         "queues": queues, "tasks": None}).fetchall()
                    plan_text = "\n".join(r[0] for r in rows)
                    timings.append(float(plan_text.rsplit("Execution Time: ", 1)[1].split()[0]))
                    reads.append(conn.execute(
                        "SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_all_tables "
                        "WHERE relid = 'pgqueue.jobs'::regclass").fetchone()[0])
                    conn.rollback()
                conn.execute("DELETE FROM pgqueue.workers")
                conn.commit()
            out[f"{label}, {served}"] = {"median_ms": stats.median(timings),
                                         # PG 15 keeps a session's counts pending (and
                                         # cumulative) until its next flush: per-claim steps.
                                         "rows_read": [b - a if b >= a else b for a, b in
                                                       zip([0, *reads], reads, strict=False)],
                                         "plan": plan_text}
    system.reset()
    return out


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "enqueue"
    with pg.server() as admin_dsn:
        try:
            result = globals()[what](admin_dsn)
        finally:
            for system in all_systems():
                pg.drop_database(admin_dsn, system.database)
    for key, value in result.items():
        if isinstance(value, dict) and "plan" in value:
            print(f"== {key}: median {value['median_ms']:.3f} ms, "
                  f"rows of pgqueue.jobs read per claim {value['rows_read']}\n{value['plan']}\n")
        else:
            print(f"{key}: {json.dumps(value) if isinstance(value, dict) else f'{value:,.0f}'}")
    out = Path(tempfile.gettempdir()) / f"pgqueue-experiment-{what}.json"
    out.write_text(json.dumps(result, indent=1))
    progress.say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
