"""`python -m benchmarks.chord_lockstep [--before REF]`: what a chord's parent costs the database
in its acknowledgement, apart from everything else. One session records the outcome of 10,000
running jobs in batches of 8 (the worker's mark_succeeded statement), lowest id first and
highest first, for plain jobs and for a chord's parents; the backend's CPU time per job
(/proc/PID/schedstat) is the measure, steady on a shared machine where wall time is not.
Statistics are fresh (ANALYZE after the enqueue): the plans the release trigger gets once
autovacuum has seen the chord. `--before REF` adds the release trigger of that commit's engine
(its migrations applied to a database of its own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path

import psycopg

from benchmarks import pg, pin, progress
from benchmarks.procs import ROOT
from benchmarks.systems import PROJECT_PYTHON
from pgqueue.queries import query

JOBS, BATCH, ROUNDS = 10_000, 8, 3
_SETUP = """
import sys
from pgqueue import chord
from benchmarks.peers.chord_app import app, merge, part
kind, count = sys.argv[1], int(sys.argv[2])
if kind == "plain":
    part.defer_many([(i,) for i in range(count)])
else:
    chord([part.s(i) for i in range(count)], merge.s()).defer()
app.close()
"""


def _run_python(code: str, args: list[str], dsn: str, engine_dir: str | None) -> None:
    """Run `code` with the working tree's engine or, given `engine_dir`, that frozen copy."""
    if engine_dir:
        code = f"from benchmarks.pin import _use_snapshot; _use_snapshot({engine_dir!r})\n{code}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGQUEUE_")}
    env.update({"PGQUEUE_DSN": dsn, "PYTHONPATH": str(ROOT)})
    subprocess.run([str(PROJECT_PYTHON), "-c", code, *args], env=env, cwd=ROOT, check=True)


def acknowledge(dsn: str, engine_dir: str | None, kind: str, descending: bool) -> float:
    """Backend CPU microseconds per job to record 10,000 successes."""
    pg.execute(dsn, "TRUNCATE pgqueue.jobs, pgqueue.job_dependencies")
    _run_python(_SETUP, [kind, str(JOBS)], dsn, engine_dir)
    pg.execute(dsn, "UPDATE pgqueue.jobs SET state = 'running', claim_token = gen_random_uuid() "
                    "WHERE state = 'queued'")
    pg.execute(dsn, "ANALYZE pgqueue.jobs, pgqueue.job_dependencies")
    order = "DESC" if descending else "ASC"
    rows = pg.execute(dsn, "SELECT id, claim_token FROM pgqueue.jobs WHERE state = 'running' "
                           f"ORDER BY id {order}")
    mark = query("mark_succeeded")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # as a worker's session (worker/connection.py)
        schedstat = Path(f"/proc/{conn.info.backend_pid}/schedstat")
        before = int(schedstat.read_text().split()[0])
        for start in range(0, len(rows), BATCH):
            batch = rows[start:start + BATCH]
            conn.execute(mark, {"ids": [r[0] for r in batch], "tokens": [r[1] for r in batch],
                                "results": [str(r[0]) for r in batch]})
        spent = int(schedstat.read_text().split()[0]) - before
    left = pg.execute(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state <> 'succeeded' "
                           "AND state <> 'queued'")[0][0]
    if left:
        raise RuntimeError(f"{kind}: {left} jobs neither succeeded nor queued")
    return spent / 1000 / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chord_lockstep",
                                     description=__doc__)
    parser.add_argument("--before", default=None, metavar="GIT_REF")
    args = parser.parse_args()
    engines: dict[str, str | None] = {"working tree": None}
    if args.before:
        engines[args.before] = str(pin.engine_snapshot(args.before)[0])
    cases = [(label, kind, descending) for label in engines for kind in ("plain", "chord")
             for descending in (False, True) if kind == "chord" or label == "working tree"]
    found: dict[tuple[str, str, bool], list[float]] = {case: [] for case in cases}
    with pg.server() as admin:
        names = {label: f"pgqbench_lockstep_{n}_{os.getpid()}" for n, label in enumerate(engines)}
        try:
            dsns = {label: pg.fresh_database(admin, name) for label, name in names.items()}
            for label, engine_dir in engines.items():
                _run_python("import sys; from pgqueue.migrate import apply_migrations; "
                            "apply_migrations(sys.argv[1])", [dsns[label]], dsns[label],
                            engine_dir)
            for _ in range(ROUNDS):
                for case in cases:
                    label, kind, descending = case
                    found[case].append(acknowledge(dsns[label], engines[label], kind,
                                                   descending))
                    progress.say(f"{label} {kind} {'highest' if descending else 'lowest'} "
                                 f"first: {found[case][-1]:.1f} us/job")
        finally:
            for name in names.values():
                pg.drop_database(admin, name)
    print(f"backend CPU per job, median of {ROUNDS} (load {os.getloadavg()[0]:.1f}):")
    for (label, kind, descending), values in found.items():
        print(f"  {label:>14} {kind:5} {'highest' if descending else 'lowest '} first: "
              f"{statistics.median(values):7.1f} us")


if __name__ == "__main__":
    main()
