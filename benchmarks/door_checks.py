"""What the door's CHECK constraints cost (migrations_sql/0006_door_checks.sql), on the schema
before 0006, after it, and after it plus the nesting CHECK that was measured and left out:
server CPU of one single-row INSERT statement (run in a server-side loop, so nothing else is
counted: every statement prepares every CHECK of the table again), of one `defer()` round trip,
and of a 10,000-job `defer_many()` (the COPY path).

    python -m benchmarks.door_checks [--dsn postgresql://127.0.0.1:5432/postgres]

Backend CPU is read from /proc/<pid>/schedstat of every server process connected to the
variant's database, so the server must run on this machine. Variants take turns within each
round (each round starting with the next one), and the median of the rounds is reported: load
from other users of the machine then hits them all alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgqueue.app import App
from pgqueue.migrate import migration_files

NESTING = """ALTER TABLE pgqueue.jobs
    ADD CONSTRAINT args_nesting CHECK ({guard} NOT jsonb_path_exists(
        args, 'strict $.**{{100}} ? (@.type() == "array" || @.type() == "object")')),
    ADD CONSTRAINT kwargs_nesting CHECK ({kwargs_guard} NOT jsonb_path_exists(
        kwargs, 'strict $.**{{100}} ? (@.type() == "array" || @.type() == "object")'))"""
SIZE_GUARD = "(pg_column_size({0}) < 808 AND pg_column_compression({0}) IS NULL) OR"
VARIANTS = {
    "before 0006": ("0005", None),
    "0006": ("0006", None),
    "0006 + nesting CHECK": ("0006", NESTING.format(guard="", kwargs_guard="")),
    "0006 + nesting CHECK, size-guarded": ("0006", NESTING.format(
        guard=SIZE_GUARD.format("args"), kwargs_guard=SIZE_GUARD.format("kwargs"))),
}
SINGLE = 2000
BULK = 10_000
STATEMENTS = 4000
INSERT_LOOP = f"""DO $$ BEGIN
    FOR i IN 1..{STATEMENTS} LOOP
        INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs)
        VALUES ('bench.noop', 'bench', jsonb_build_array(i), '{{}}');
    END LOOP;
END $$"""


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


@contextmanager
def _database(admin_dsn: str, label: str, last: str, extra: str | None) -> Iterator[str]:
    name = f"pgq_door_{os.getpid()}_{list(VARIANTS).index(label)}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(admin_dsn, dbname=name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for migration in migration_files():
                if migration.name[:4] <= last:
                    conn.execute(migration.sql.encode())
            if extra:
                conn.execute(extra.encode())
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


class Variant:
    def __init__(self, dsn: str, monitor: psycopg.Connection) -> None:
        self.dbname = conninfo_to_dict(dsn)["dbname"]
        self.loop = psycopg.connect(dsn, autocommit=True)
        self.monitor = monitor
        self.app = App(dsn)
        self.task = self.app.task(name="bench.noop", queue="bench")(lambda n: None)
        self.statement: list[float] = []
        self.single: list[tuple[float, float]] = []
        self.bulk: list[tuple[float, float]] = []

    def _backends(self) -> list[int]:
        return [pid for (pid,) in self.monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
            (self.dbname, self.loop.info.backend_pid))]

    def _measure(self, run: Callable[[], object], into: list[tuple[float, float]],
                 per: int) -> None:
        self.task.defer(0)  # the connections exist before their server processes are counted
        pids = self._backends()
        cpu, wall = _cpu_seconds(pids), time.perf_counter()
        run()
        into.append(((_cpu_seconds(pids) - cpu) / per, (time.perf_counter() - wall) / per))

    def round(self) -> None:
        pids = [self.loop.info.backend_pid]
        cpu = _cpu_seconds(pids)
        self.loop.execute(INSERT_LOOP)
        self.statement.append((_cpu_seconds(pids) - cpu) / STATEMENTS)
        self._measure(lambda: [self.task.defer(n) for n in range(SINGLE)], self.single, SINGLE)
        self._measure(lambda: self.task.defer_many([(n,) for n in range(BULK)]), self.bulk, 1)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.door_checks",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get(
        "PGQUEUE_BENCH_DSN", "postgresql://127.0.0.1:5432/postgres"))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with ExitStack() as stack, psycopg.connect(args.dsn, autocommit=True) as monitor:
        variants = {label: Variant(stack.enter_context(_database(args.dsn, label, *spec)),
                                   monitor) for label, spec in VARIANTS.items()}
        order = list(variants.values())
        for turn in range(args.rounds):  # each round starts with the next variant: no order bias
            for variant in order[turn % len(order):] + order[:turn % len(order)]:
                variant.round()
        for variant in variants.values():
            variant.app.close()
            variant.loop.close()
    base = variants["before 0006"]
    print(f"{'schema':36} {'INSERT statement':>17}  {'defer(): server CPU':>20} {'wall':>7}  "
          f"{'defer_many(10k): server CPU':>28} {'wall':>8}")
    for label, variant in variants.items():
        statement = statistics.median(variant.statement) * 1e6
        cpu, wall = (statistics.median(v) * 1e6 for v in zip(*variant.single, strict=True))
        bulk_cpu, bulk_wall = (statistics.median(v) * 1e3 for v in zip(*variant.bulk,
                                                                       strict=True))
        base_statement = statistics.median(base.statement) * 1e6
        base_cpu = statistics.median(v for v, _ in base.single) * 1e6
        base_bulk = statistics.median(v for v, _ in base.bulk) * 1e3
        print(f"{label:36} {statement:5.1f} us ({statement - base_statement:+5.1f})  "
              f"{cpu:8.1f} us ({cpu - base_cpu:+5.1f}) {wall:5.0f} us  "
              f"{bulk_cpu:14.1f} ms ({(bulk_cpu / base_bulk - 1) * 100:+5.1f} %) "
              f"{bulk_wall:6.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
