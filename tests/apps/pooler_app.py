"""Tasks and producers for the PgBouncer tests (tests/reliability/test_pgbouncer.py).

Worker subprocesses import the app with --app, producers run this module (hence the task's
explicit name: here it is `__main__`); both find the pooler
in PGQUEUE_DSN and PGQUEUE_POOLER (or the CLI's --dsn and --pooler). A task records its run
through the app's own connections, so the tasks' queries cross the pooler too, and with it what
their server session shows of state other clients left behind (`LEAKED_SESSION_STATE`).
"""

from __future__ import annotations

import asyncio
import os
import sys

import pgqueue
from tests.helpers import SqlCall

app = pgqueue.App()

RUNS_DDL = """
CREATE TABLE runs (
    job_id  bigint NOT NULL,
    pid     integer NOT NULL,
    leaked  text NOT NULL
)
"""

PGBOUNCER_TRACKED = ("application_name", "client_encoding", "DateStyle", "TimeZone",
                     "standard_conforming_strings")
"""Parameters PgBouncer itself SETs on a server session for each client it links to it."""

LEAKED_SESSION_STATE = f"""
SELECT concat_ws('; ',
    (SELECT 'settings: ' || string_agg(name || '=' || setting, ', ' ORDER BY name)
     FROM pg_settings
     WHERE source = 'session' AND name NOT IN ({", ".join(f"'{n}'" for n in PGBOUNCER_TRACKED)})),
    (SELECT 'prepared: ' || string_agg(name, ', ') FROM pg_prepared_statements),
    (SELECT 'listening: ' || string_agg(channel, ', ')
     FROM pg_listening_channels() AS channel)
) AS leaked
"""
"""Session state on this server session that nobody on this client created: settings SET for
the session, prepared statements, LISTEN registrations. Empty when nothing leaked."""


@app.task(name="pooler_app.record_run", pass_context=True, retry=False)
def record_run(context: pgqueue.JobContext, n: int) -> None:
    app.db.run(SqlCall(
        "INSERT INTO runs (job_id, pid, leaked) "
        f"SELECT %(job_id)s, %(pid)s, ({LEAKED_SESSION_STATE}) RETURNING 1",
        {"job_id": context.job_id, "pid": os.getpid()}))


def produce(how: str, first: int, count: int) -> None:
    """Defer `count` jobs one way: `defer` (the sync fast lane and pool), `defer_async` (the
    async pool) or `defer_many` (two INSERT batches of 50, then one COPY of the rest: count must
    leave at least COPY_THRESHOLD for it)."""
    numbers = list(range(first, first + count))
    if how == "defer":
        for n in numbers:
            record_run.defer(n)
    elif how == "defer_async":
        asyncio.run(_defer_async(numbers))
    elif how == "defer_many":
        for start in (0, 50):
            record_run.defer_many([(n,) for n in numbers[start:start + 50]])
        record_run.defer_many([(n,) for n in numbers[100:]])
    else:
        raise SystemExit(f"unknown way to defer: {how}")
    app.close()
    print(f"deferred {count}")


async def _defer_async(numbers: list[int]) -> None:
    for n in numbers:
        await record_run.defer_async(n)
    await app.aclose()


if __name__ == "__main__":
    produce(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
