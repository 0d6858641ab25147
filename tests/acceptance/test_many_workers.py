from __future__ import annotations

import psycopg
import pytest

from tests.apps import core_app
from tests.helpers import scalar, spawn_cli


@pytest.mark.slow
def test_5000_jobs_over_4_worker_processes_run_exactly_once(ledger_dsn: str) -> None:
    core_app.app.dsn = ledger_dsn
    core_app.noop.defer_many([(n,) for n in range(5000)])
    core_app.app.close()
    workers = [spawn_cli("--app", "tests.apps.core_app:app", "--log-level", "WARNING",
                         "worker", "--one-shot", "-c", "8", "-n", f"w{n}", dsn=ledger_dsn)
               for n in range(4)]
    for worker in workers:
        output, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, output
    with psycopg.connect(ledger_dsn) as conn:
        runs = conn.execute("SELECT job_id, count(*) FROM ledger GROUP BY job_id").fetchall()
        pids = conn.execute("SELECT count(DISTINCT pid) FROM ledger").fetchone()[0]
    assert len(runs) == 5000
    assert {count for _, count in runs} == {1}
    assert pids >= 2, "the work was spread over several processes"
    assert scalar(ledger_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'succeeded'") == 5000
