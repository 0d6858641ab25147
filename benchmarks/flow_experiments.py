"""Where flow control's cost goes: the measurements behind "Flow control cost" in
docs/benchmarks.md (`python -m benchmarks flow` gives the rates; these say why).

    python -m benchmarks.flow_experiments lockstep [BEFORE AFTER]   # claim/ack CPU per job
    python -m benchmarks.flow_experiments functions [AFTER]         # server functions per case
    python -m benchmarks.flow_experiments passon [AFTER]            # the lock hand-over's NOTIFY
    python -m benchmarks.flow_experiments ratewindow [BEFORE AFTER] # a rate limit's claim cost

BEFORE defaults to 3dc12ce (flow.BEFORE), AFTER to HEAD; both run as frozen copies.

`lockstep` drains the same backlog from a database of each engine with the engine's own
claim_jobs and mark_succeeded_returning_none SQL, as prepared statements on worker-like
sessions, one batch from each in turn, and reads each backend's CPU time (/proc/PID/schedstat)
around every statement: other users' load slows both alike and adds nothing to either's CPU
time, so the after/before ratio holds to a few per cent on a busy 2-core machine where rates
swing by 30 %. It also runs the after engine with the acknowledgement written without the join
(`ACK_WITHOUT_JOIN`), the fix proposed in docs/benchmarks.md.

`functions` runs each `flow` case of the after engine once with `track_functions = all` on its
database and prints the server functions' calls and time per job (the claim function, the
lock triggers, and `queue_is_paused`, which the idle worker's next-job query calls per row).

`ratewindow` drains 2,000 jobs in claims of 10 from a queue limited to 1,000,000 starts an
hour (never binds) whose window already holds 0, 10,000 or 50,000 starts, with each engine in
turn, and reports the claim's backend CPU per claim: 0010's recent_starts array was rewritten
whole by every claim, 0022's ring rewrites the claim's own slots.

`passon` drains one-lock-per-job backlogs with the after engine's lock hand-over trigger as
shipped and, in the other database, with that trigger sending its wake-up NOTIFY only when it
queued a waiting job (`IF FOUND`), cases taking turns: jobs/s and CPU per job of each.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import flow, pg, progress
from benchmarks.systems import System

ACK_WITHOUT_JOIN = """
UPDATE pgqueue.jobs AS j
SET state = 'succeeded', finished_at = now(), result = 'null'::jsonb, worker_id = NULL
FROM (SELECT set_config('synchronous_commit', 'on', true)) AS durable
WHERE j.id = ANY(%(ids)s::bigint[]) AND j.claim_token = ANY(%(tokens)s::uuid[])
  AND j.state::text = 'running'
RETURNING j.id"""
"""mark_succeeded_returning_none with the ids and tokens as two index-friendly filters: no
join with the unnest, so no plan can rescan it per row (claim tokens are random UUIDs held by
one claim: a token of the batch matches only its own job)."""


def _queries(system: System) -> dict[str, str]:
    text = (Path(str(system.engine)) / "pgqueue" / "sql" / "queries.sql").read_text()
    out = {}
    for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        out[name.strip()] = "\n".join(line for line in body.splitlines()
                                      if not line.startswith("--")).strip()
    return out


def _cpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


class _Drainer:
    """One worker-like session (prepared statements, the engine's planner settings) draining
    its database batch by batch, adding up its backend's CPU per statement."""

    def __init__(self, system: System, ack_sql: str | None, jobs: int) -> None:
        system.reset()
        system.seed(jobs)
        self.sql = _queries(system)
        if ack_sql:
            self.sql["mark_succeeded_returning_none"] = ack_sql
        seqscan = "off" if "PLANNER_SETTINGS" in (
            Path(str(system.engine)) / "pgqueue" / "worker" / "connection.py").read_text() \
            else "on"
        self.conn = psycopg.connect(system.dsn, autocommit=True, prepare_threshold=1,
                                    options=f"-c enable_seqscan={seqscan}")
        self.pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.worker_id = self.conn.execute(
            "INSERT INTO pgqueue.workers (name, hostname, pid, concurrency) "
            "VALUES ('lockstep', 'bench', 1, 10) RETURNING id").fetchone()[0]
        self.claim_ns = self.ack_ns = self.done = 0

    def batch(self, size: int) -> bool:
        before = _cpu_ns(self.pid)
        rows = self.conn.execute(self.sql["claim_jobs"], {
            "worker_id": self.worker_id, "limit": size, "queues": None, "tasks": None},
            prepare=True).fetchall()
        claimed = _cpu_ns(self.pid)
        self.claim_ns += claimed - before
        if not rows:
            return False
        self.conn.execute(self.sql["mark_succeeded_returning_none"], {
            "ids": [r[0] for r in rows], "tokens": [r[8] for r in rows]}, prepare=True)
        self.ack_ns += _cpu_ns(self.pid) - claimed
        self.done += len(rows)
        return True

    def close(self) -> dict[str, float]:
        self.conn.close()
        return {"claim_us": self.claim_ns / 1000 / self.done,
                "ack_us": self.ack_ns / 1000 / self.done}


def lockstep(systems: dict[str, System], admin_dsn: str, jobs: int = 5000,
             reps: int = 5) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in (10, 100, 500):
        for ack_label, ack_sql in (("as shipped", None), ("ack without join",
                                                          ACK_WITHOUT_JOIN)):
            runs: list[dict[str, dict[str, float]]] = []
            for _ in range(reps):
                drainers = {"before": _Drainer(systems["before"], None, jobs),
                            "after": _Drainer(systems["after"], ack_sql, jobs)}
                while any([d.batch(size) for d in drainers.values()]):
                    pass
                runs.append({k: d.close() for k, d in drainers.items()})
            ratios = [sum(r["after"].values()) / sum(r["before"].values()) for r in runs]
            row = {f"{side} {part}": statistics.median(r[side][part] for r in runs)
                   for side in ("before", "after") for part in ("claim_us", "ack_us")}
            row["after/before CPU"] = statistics.median(ratios)
            row["ratio min-max"] = [min(ratios), max(ratios)]
            out[f"batch {size}, after's ack {ack_label}"] = row
            progress.say(f"batch {size}, after's ack {ack_label}: {json.dumps(row)}")
    return out


PREFILL_RING = """
INSERT INTO pgqueue.queue_rate_starts (queue, slot, started_at)
SELECT %(queue)s, n - 1, now() - interval '10 minutes' + n * interval '1 ms'
FROM generate_series(1, %(starts)s) AS n;
UPDATE pgqueue.queue_limits SET rate_next = %(starts)s WHERE queue = %(queue)s"""
PREFILL_ARRAY = """
UPDATE pgqueue.queue_limits
SET recent_starts = ARRAY(SELECT now() - interval '10 minutes' + n * interval '1 ms'
                          FROM generate_series(%(starts)s, 1, -1) AS n)
WHERE queue = %(queue)s"""
"""A window of `starts` starts of the last ten minutes, as each engine keeps it (the ring of
migration 0022, or 0010's recent_starts array, newest first)."""


def ratewindow(systems: dict[str, System], admin_dsn: str, claims: int = 200,
               size: int = 10, reps: int = 3) -> dict[str, Any]:
    per_claim: dict[str, dict[int, list[float]]] = {side: {} for side in systems}
    for _ in range(reps):
        for starts in (0, 10_000, 50_000):
            for side, system in systems.items():
                drainer = _Drainer(system, None, claims * size)
                conn = drainer.conn
                conn.execute("DELETE FROM pgqueue.queue_limits")
                conn.execute("SELECT pgqueue.set_queue_limit(%s, 'rate_limit', '1000000/h')",
                             (flow.QUEUE,))
                ring = conn.execute("SELECT to_regclass('pgqueue.queue_rate_starts') IS NOT "
                                    "NULL").fetchone()[0]
                for statement in (PREFILL_RING if ring else PREFILL_ARRAY).split(";"):
                    conn.execute(statement, {"queue": flow.QUEUE, "starts": starts})
                while drainer.batch(size):
                    pass
                per_claim[side].setdefault(starts, []).append(
                    drainer.close()["claim_us"] * size)
    out = {side: {f"{starts:,} starts in the window": statistics.median(times)
                  for starts, times in sorted(buckets.items())}
           for side, buckets in per_claim.items()}
    progress.say(f"claim CPU us per claim of {size}: {json.dumps(out, indent=1)}")
    return out


def functions(systems: dict[str, System], admin_dsn: str, jobs: int = 3000) -> dict[str, Any]:
    system = systems["after"]
    pg.execute(admin_dsn, f"ALTER DATABASE \"{system.database}\" SET track_functions = 'all'")
    sizes = flow.FlowSizes(rounds=1, jobs=jobs, shared_keys=jobs // 100, cap_s=120)
    out: dict[str, Any] = {}
    for case in flow.cases(sizes):
        if case.engine != "after":
            continue
        pg.execute(system.dsn, "SELECT pg_stat_reset()")
        result = flow.measure(system, case, sizes)
        time.sleep(1.5)  # a backend publishes its function counts when idle, within ~1 s
        rows = pg.execute(system.dsn, "SELECT funcname, calls, total_time "
                                      "FROM pg_stat_user_functions WHERE calls > 0 "
                                      "ORDER BY total_time DESC")
        out[f"c={case.concurrency} {case.label}"] = {
            "jobs_per_s": round(result["drain_per_s"]),
            "db_cpu_us_per_job": round(result["db_cpu_us_per_job"]),
            **{name: {"calls": calls, "us_per_job": round(1000 * ms / result["jobs"], 1)}
               for name, calls, ms in rows}}
        progress.say(f"c={case.concurrency} {case.label}: "
                     f"{json.dumps(out[f'c={case.concurrency} {case.label}'])}")
    return out


NOTIFY_ALWAYS = "PERFORM pg_notify('pgqueue_jobs', '');"
NOTIFY_IF_QUEUED = "IF FOUND THEN PERFORM pg_notify('pgqueue_jobs', ''); END IF;"


def passon(systems: dict[str, System], admin_dsn: str, rounds: int = 5) -> dict[str, Any]:
    shipped, patched = systems["before"], systems["after"]  # both run the AFTER engine
    definition = pg.execute(patched.dsn, "SELECT pg_get_functiondef("
                                         "'pgqueue.jobs_lock_pass_on()'::regprocedure)")[0][0]
    if NOTIFY_ALWAYS not in definition:
        raise RuntimeError("jobs_lock_pass_on has no unconditional NOTIFY to patch")
    pg.execute(patched.dsn, definition.replace(NOTIFY_ALWAYS, NOTIFY_IF_QUEUED))
    sizes = flow.FlowSizes(rounds=rounds, jobs=10_000, shared_keys=100, cap_s=120)
    chosen = [c for c in flow.cases(sizes) if c.key.startswith("locks-distinct")]
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for case in chosen:
            for label, system in (("NOTIFY always (as shipped)", shipped),
                                  ("NOTIFY only when a job was queued", patched)):
                result = flow.measure(system, case, sizes)
                runs.setdefault(f"c={case.concurrency} {label}", []).append(result)
    out = {key: {"jobs_per_s": statistics.median(r["drain_per_s"] for r in results),
                 "worker_cpu_us_per_job": statistics.median(
                     r["worker_cpu_us_per_job"] for r in results),
                 "db_cpu_us_per_job": statistics.median(r["db_cpu_us_per_job"] for r in results)}
           for key, results in runs.items()}
    for key, row in out.items():
        progress.say(f"{key}: {json.dumps(row)}")
    return out


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "lockstep"
    refs = argv[1:]
    if what in ("lockstep", "ratewindow"):
        before = refs[0] if refs else flow.BEFORE
        after = refs[1] if len(refs) > 1 else "HEAD"
    else:  # one engine in both databases
        before = after = refs[0] if refs else "HEAD"
    with pg.server() as admin_dsn:
        systems, _ = flow.prepare_systems(admin_dsn, before, after)
        try:
            result = globals()[what](systems, admin_dsn)
        finally:
            for system in systems.values():
                pg.drop_database(admin_dsn, system.database)
    out = Path("/tmp") / f"pgqueue-flow-experiment-{what}.json"
    out.write_text(json.dumps(result, indent=1))
    progress.say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
