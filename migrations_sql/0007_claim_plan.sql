-- pgqueue 0007: a claim plan that does not depend on fresh statistics.
--
-- A queue table swings from empty to thousands of jobs in a second, faster than autoanalyze
-- follows. On statistics taken while it was empty, Postgres estimates a handful of queued rows
-- and prefers to fetch every queued row of the queue and sort it (a bitmap scan, then a sort)
-- over walking a claim-order index and stopping after the batch: 28 ms a claim at 10,000
-- queued instead of 0.07 ms, so a worker ran at 70 jobs/s instead of 1,000.
--
-- The choice of rows is made here, in a function whose SET clauses take the sort and the
-- bitmap and sequential scans off the table for its own statements only (restored when it
-- returns, so nothing leaks to the session or, behind a pooler, to other clients): each scan
-- is an ordered walk of a claim-order index that stops after the batch, whatever the
-- statistics say. jit = off because those settings price the plans in the billions, which
-- would otherwise compile each claim (70 ms).
--
--   * every queue, none paused: one walk of jobs_claim_order_idx;
--   * named queues, or some queue paused: one walk of jobs_queue_claim_order_idx per queue
--     (queue = one value, so the index yields claim order), merged. jobs_claim_order_idx,
--     filtered on the queue, yields the same order, and Postgres picks it when it believes a
--     queue holds a large share of the jobs (with two queues in the statistics, half): for a
--     small queue behind a big one it then reads every job of the big one (20,030 rows, seen).
--     The queue column's n_distinct is therefore pinned to "many queues" (the planner's only
--     use of it here is the share of one queue), so the per-queue index always wins. Paused queues are dropped
--     before their walk, so a paused queue of a million jobs costs nothing. Serving every
--     queue, the queues that hold queued jobs are found by skipping through the same index
--     (one probe per queue).
-- Each walk locks at most the batch (SKIP LOCKED: concurrent claims pass each other); rows
-- locked beyond the merged batch are released when the claim's transaction ends.

ALTER TABLE pgqueue.jobs ALTER COLUMN queue SET (n_distinct = -0.05);
ANALYZE pgqueue.jobs (queue);

CREATE FUNCTION pgqueue.claimable_job_ids(max_jobs integer, served_queues text[])
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off SET jit = off
AS $$
BEGIN
    IF served_queues IS NULL AND NOT EXISTS (SELECT 1 FROM pgqueue.paused_queues) THEN
        RETURN ARRAY(
            SELECT id FROM pgqueue.jobs
            WHERE state = 'queued' AND run_at <= now()
            ORDER BY priority DESC, run_at, id
            LIMIT max_jobs
            FOR UPDATE SKIP LOCKED);
    END IF;
    IF served_queues IS NULL THEN
        served_queues := ARRAY(
            WITH RECURSIVE queued AS (
                (SELECT queue FROM pgqueue.jobs WHERE state = 'queued' ORDER BY queue LIMIT 1)
                UNION ALL
                SELECT (SELECT j.queue FROM pgqueue.jobs AS j
                        WHERE j.state = 'queued' AND j.queue > queued.queue
                        ORDER BY j.queue LIMIT 1)
                FROM queued WHERE queued.queue IS NOT NULL)
            SELECT queue FROM queued WHERE queue IS NOT NULL);
    END IF;
    RETURN ARRAY(
        SELECT candidate.id
        FROM (SELECT DISTINCT queue FROM unnest(served_queues) AS served(queue)
              WHERE NOT EXISTS (SELECT 1 FROM pgqueue.paused_queues AS p
                                WHERE p.queue = served.queue)) AS served,
             LATERAL (
                 SELECT j.id, j.priority, j.run_at FROM pgqueue.jobs AS j
                 WHERE j.state = 'queued' AND j.queue = served.queue AND j.run_at <= now()
                 ORDER BY j.priority DESC, j.run_at, j.id
                 LIMIT max_jobs
                 FOR UPDATE SKIP LOCKED) AS candidate
        ORDER BY candidate.priority DESC, candidate.run_at, candidate.id
        LIMIT max_jobs);
END;
$$;
COMMENT ON FUNCTION pgqueue.claimable_job_ids(integer, text[]) IS
    'Locks and returns the ids of up to max_jobs due jobs in claim order (every queue when served_queues is NULL), skipping paused queues and rows other sessions hold; the worker''s claim marks them running.';

INSERT INTO pgqueue.migrations (name) VALUES ('0007_claim_plan');
