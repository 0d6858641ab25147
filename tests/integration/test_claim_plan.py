"""The claim must read O(batch) rows however many finished jobs the table holds."""

from __future__ import annotations

import psycopg
import pytest

from pgqueue.queries import query


def _nodes(plan: dict) -> list[dict]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


def _explain_and_roll_back(dsn: str, name: str, params: dict[str, object]) -> dict:
    with psycopg.connect(dsn) as conn:
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query(name)}",
                            params).fetchone()[0][0]
        conn.rollback()
    return plan


@pytest.mark.slow
@pytest.mark.parametrize(("name", "extra"), [
    ("claim_jobs_any_queue", {}),
    ("claim_jobs_in_queues", {"queues": ["default"]}),
])
def test_claim_uses_the_partial_index_and_reads_only_the_batch(
    conn: psycopg.Connection, dsn: str, name: str, extra: dict[str, object]
) -> None:
    conn.execute("""
        INSERT INTO pgqueue.jobs (task_name, queue, state, finished_at, attempts)
        SELECT 't', 'default', 'succeeded', now(), 1 FROM generate_series(1, 500000)""")
    conn.execute("""
        INSERT INTO pgqueue.jobs (task_name, queue)
        SELECT 't', CASE WHEN n % 2 = 0 THEN 'default' ELSE 'other' END
        FROM generate_series(1, 20000) n""")
    conn.execute("ANALYZE pgqueue.jobs")
    worker_id = conn.execute(
        "INSERT INTO pgqueue.workers (name, hostname, pid, concurrency) "
        "VALUES ('w', 'h', 1, 10) RETURNING id").fetchone()[0]
    plan = _explain_and_roll_back(dsn, name, {"worker_id": worker_id, "limit": 10, **extra})
    nodes = _nodes(plan["Plan"])
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], plan
    job_scans = [n for n in nodes if n.get("Relation Name") == "jobs" and "Index Name" in n
                 and n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Index Scan")]
    claim_scans = [n for n in job_scans if n["Index Name"].endswith("claim_order_idx")]
    assert claim_scans, f"claim did not use a claim index: {[n['Index Name'] for n in job_scans]}"
    # O(batch): the scan stops after the batch instead of walking 520k rows.
    assert claim_scans[0]["Actual Rows"] <= 20, claim_scans[0]
    assert plan["Execution Time"] < 100, plan["Execution Time"]
