-- pgqueue 0026: a rate-limited claim's stamp no longer reads the whole rate window.
--
-- Every claim that counted rate-limited starts stamps them with one instant, never before the
-- newest start a ring already holds (0022). That look-up joined pgqueue.queue_rate_starts to
-- the claimed jobs' queues, and its generic plan (claimable_job_ids plans once per session,
-- force_generic_plan) was made from the table's statistics at the session's first claim: on a
-- ring never analyzed (a rate limit set moments ago, a new database) the plan walked every slot
-- of every ring and filtered them, so each claim read all the starts recorded so far — a worker
-- draining 10,000 jobs under a 100000/s limit that never binds ran at 413 jobs/s, 2,227 us of
-- database CPU a job, where the same drain with statistics ran at 3,654 (auto_explain: "Index
-- Scan using queue_rate_starts_pkey ... rows=420", "Rows Removed by Join Filter: 419", growing
-- with every claim). The allowance had the same flaw: its count of the next k slots still in
-- the window read `slot = ANY(...)` as a filter over the queue's whole ring (Rows Removed by
-- Filter: 9310 in a claim of 10). Now every ring look-up is a primary-key probe of one slot
-- (LATERAL ... LIMIT 1, which the planner cannot flatten into a join and which has no cheaper
-- plan whatever the statistics say). The same shape for the idle worker's look-up of when a
-- rate window reopens (pgqueue/sql/queries.sql).
--
-- The function is restated whole (0022's text, changed only where said).

CREATE OR REPLACE FUNCTION pgqueue.claimable_job_ids(max_jobs integer, served_queues text[],
                                          served_tasks text[] DEFAULT NULL)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    this_queue text;
    lim pgqueue.queue_limits;
    checked_at timestamptz;
    started_at timestamptz;
    allowance integer;
    job_row record;
    taken_ids bigint[];
    taken_priorities integer[];
    taken_run_ats timestamptz[];
    chosen bigint[];
    rated boolean;
    key_taken jsonb;
    scanned integer;
    scan_budget integer;
    this_key text;
    key_free integer;
    ring record;
BEGIN
    -- No limit and no pause anywhere: one ordered walk (the claim before flow control).
    IF served_queues IS NULL AND NOT EXISTS (SELECT 1 FROM pgqueue.paused_queues
                                             UNION ALL SELECT 1 FROM pgqueue.queue_limits) THEN
        RETURN ARRAY(
            SELECT id FROM pgqueue.jobs
            WHERE state = 'queued' AND run_at <= now()
              AND (served_tasks IS NULL OR task_name = ANY(served_tasks))
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
    -- None of the served queues has limits: every queue's walk merged, no row lock.
    IF NOT EXISTS (SELECT 1 FROM pgqueue.queue_limits AS l WHERE l.queue = ANY(served_queues)) THEN
        RETURN ARRAY(
            SELECT candidate.id
            FROM (SELECT DISTINCT queue FROM unnest(served_queues) AS served(queue)
                  WHERE NOT EXISTS (SELECT 1 FROM pgqueue.paused_queues AS p
                                    WHERE p.queue = served.queue)) AS served,
                 LATERAL (
                     SELECT j.id, j.priority, j.run_at FROM pgqueue.jobs AS j
                     WHERE j.state = 'queued' AND j.queue = served.queue AND j.run_at <= now()
                       AND (served_tasks IS NULL OR j.task_name = ANY(served_tasks))
                     ORDER BY j.priority DESC, j.run_at, j.id
                     LIMIT max_jobs
                     FOR UPDATE SKIP LOCKED) AS candidate
            ORDER BY candidate.priority DESC, candidate.run_at, candidate.id
            LIMIT max_jobs);
    END IF;
    -- Some served queue has limits: one queue at a time, each limited one under its row lock.
    taken_ids := '{}';
    taken_priorities := '{}';
    taken_run_ats := '{}';
    rated := false;
    scan_budget := greatest(100, 10 * max_jobs);
    FOR this_queue IN SELECT DISTINCT s.queue FROM unnest(served_queues) AS s(queue)
                  WHERE NOT EXISTS (SELECT 1 FROM pgqueue.paused_queues AS p
                                    WHERE p.queue = s.queue) LOOP
        SELECT * INTO lim FROM pgqueue.queue_limits AS l WHERE l.queue = this_queue FOR UPDATE;
        -- The window is judged at an instant taken once the lock is held: every start the
        -- previous holder of the lock recorded is at or before it.
        checked_at := clock_timestamp();
        allowance := max_jobs;
        IF FOUND AND lim.concurrency IS NOT NULL THEN
            allowance := least(allowance, lim.concurrency - (
                SELECT count(*) FROM pgqueue.jobs AS j
                WHERE j.queue = this_queue AND j.state = 'running')::integer);
        END IF;
        IF FOUND AND lim.rate_limit IS NOT NULL AND allowance > 0 THEN
            -- The next `allowance` slots of the ring, oldest first: a start may take each one
            -- that is free or left the window; the others, newer, are a suffix of them.
            allowance := least(allowance, lim.rate_limit);
            -- 0026: one primary-key probe per slot (a plan made on an unanalyzed ring read
            -- `slot = ANY(...)` as a filter over the queue's whole ring).
            allowance := allowance - (
                SELECT count(*) FROM generate_series(0, allowance - 1) AS n
                CROSS JOIN LATERAL (
                    SELECT 1 FROM pgqueue.queue_rate_starts AS r
                    WHERE r.queue = this_queue AND r.slot = (lim.rate_next + n) % lim.rate_limit
                      AND r.started_at > checked_at - lim.rate_period
                    LIMIT 1) AS in_window)::integer;
            rated := true;
        END IF;
        CONTINUE WHEN allowance <= 0;
        IF lim.per_key_concurrency IS NULL THEN
            -- No per-key limit: the queue's due jobs in claim order, as many as allowed.
            FOR job_row IN
                SELECT j.id, j.priority, j.run_at FROM pgqueue.jobs AS j
                WHERE j.state = 'queued' AND j.queue = this_queue AND j.run_at <= now()
                  AND (served_tasks IS NULL OR j.task_name = ANY(served_tasks))
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT allowance
                FOR UPDATE SKIP LOCKED
            LOOP
                taken_ids := taken_ids || job_row.id;
                taken_priorities := taken_priorities || job_row.priority;
                taken_run_ats := taken_run_ats || job_row.run_at;
            END LOOP;
            lim := NULL;
            CONTINUE;
        END IF;
        key_taken := '{}';
        scanned := 0;
        -- Phase 1: the queue's due jobs in claim order, skipping keys at their limit, reading
        -- at most scan_budget rows.
        FOR job_row IN
            SELECT j.id, j.priority, j.run_at, j.concurrency_key FROM pgqueue.jobs AS j
            WHERE j.state = 'queued' AND j.queue = this_queue AND j.run_at <= now()
              AND (served_tasks IS NULL OR j.task_name = ANY(served_tasks))
            ORDER BY j.priority DESC, j.run_at, j.id
            FOR UPDATE SKIP LOCKED
        LOOP
            scanned := scanned + 1;
            IF job_row.concurrency_key IS NULL
               OR (SELECT count(*) FROM pgqueue.jobs AS j
                   WHERE j.queue = this_queue AND j.state = 'running'
                     AND j.concurrency_key = job_row.concurrency_key)
                  + coalesce((key_taken ->> job_row.concurrency_key)::integer, 0)
                  < lim.per_key_concurrency THEN
                IF job_row.concurrency_key IS NOT NULL THEN
                    key_taken := jsonb_set(key_taken, ARRAY[job_row.concurrency_key], to_jsonb(
                        coalesce((key_taken ->> job_row.concurrency_key)::integer, 0) + 1));
                END IF;
                taken_ids := taken_ids || job_row.id;
                taken_priorities := taken_priorities || job_row.priority;
                taken_run_ats := taken_run_ats || job_row.run_at;
                allowance := allowance - 1;
                EXIT WHEN allowance = 0;
            END IF;
            EXIT WHEN scanned >= scan_budget;
        END LOOP;
        -- Phase 2, only when keys at their limit filled the budget: each key with queued jobs
        -- once (jobs_queued_key_idx, one probe per key), round robin from where the last such
        -- claim stopped, taking the oldest of its due jobs up to its free slots. The claim
        -- reads one row per key, never the saturated keys' backlogs.
        IF allowance > 0 AND scanned >= scan_budget THEN
            FOR this_key IN
                SELECT k.concurrency_key FROM (
                    WITH RECURSIVE keys AS (
                        (SELECT j.concurrency_key FROM pgqueue.jobs AS j
                         WHERE j.state = 'queued' AND j.queue = this_queue
                           AND j.concurrency_key IS NOT NULL
                         ORDER BY j.concurrency_key LIMIT 1)
                        UNION ALL
                        SELECT (SELECT j.concurrency_key FROM pgqueue.jobs AS j
                                WHERE j.state = 'queued' AND j.queue = this_queue
                                  AND j.concurrency_key > keys.concurrency_key
                                ORDER BY j.concurrency_key LIMIT 1)
                        FROM keys WHERE keys.concurrency_key IS NOT NULL)
                    SELECT concurrency_key FROM keys WHERE concurrency_key IS NOT NULL) AS k
                ORDER BY k.concurrency_key <= coalesce(lim.key_cursor, ''), k.concurrency_key
            LOOP
                key_free := lim.per_key_concurrency
                    - (SELECT count(*) FROM pgqueue.jobs AS j
                       WHERE j.queue = this_queue AND j.state = 'running'
                         AND j.concurrency_key = this_key)::integer
                    - coalesce((key_taken ->> this_key)::integer, 0);
                CONTINUE WHEN key_free <= 0;
                FOR job_row IN
                    SELECT j.id, j.priority, j.run_at FROM pgqueue.jobs AS j
                    WHERE j.state = 'queued' AND j.queue = this_queue
                      AND j.concurrency_key = this_key AND j.run_at <= now()
                      AND NOT (j.id = ANY(taken_ids))
                      AND (served_tasks IS NULL OR j.task_name = ANY(served_tasks))
                    ORDER BY j.priority DESC, j.run_at, j.id
                    LIMIT least(key_free, allowance)
                    FOR UPDATE SKIP LOCKED
                LOOP
                    taken_ids := taken_ids || job_row.id;
                    taken_priorities := taken_priorities || job_row.priority;
                    taken_run_ats := taken_run_ats || job_row.run_at;
                    allowance := allowance - 1;
                END LOOP;
                IF allowance = 0 THEN
                    UPDATE pgqueue.queue_limits SET key_cursor = this_key
                    WHERE queue = this_queue;
                    EXIT;
                END IF;
            END LOOP;
        END IF;
        lim := NULL;
    END LOOP;
    chosen := ARRAY(SELECT t.id FROM unnest(taken_ids, taken_priorities, taken_run_ats)
                                     AS t(id, priority, run_at)
                    ORDER BY t.priority DESC, t.run_at, t.id LIMIT max_jobs);
    IF rated AND cardinality(chosen) > 0 THEN
        -- Every start of this claim is stamped with one instant, after every queue's check
        -- and never before the newest start a ring holds (a clock stepped back must not put
        -- starts behind a window already judged); the claim's UPDATE writes it to
        -- jobs.started_at (pgqueue.claim_started_at), so the windows and the jobs agree.
        -- 0026: each queue's newest slot by its primary key (LIMIT 1 keeps the sub-select
        -- from being flattened into a join whose plan could walk every ring).
        started_at := greatest(clock_timestamp(), (
            SELECT max(newest.started_at)
            FROM pgqueue.queue_limits AS l
            CROSS JOIN LATERAL (
                SELECT r.started_at FROM pgqueue.queue_rate_starts AS r
                WHERE r.queue = l.queue
                  AND r.slot = (l.rate_next + l.rate_limit - 1) % l.rate_limit
                LIMIT 1) AS newest
            WHERE l.rate_limit IS NOT NULL
              AND l.queue = ANY(ARRAY(SELECT DISTINCT j.queue FROM pgqueue.jobs AS j
                                      WHERE j.id = ANY(chosen)))));
        FOR ring IN
            SELECT l.queue, l.rate_limit, l.rate_next, c.started
            FROM (SELECT j.queue, count(*)::integer AS started FROM pgqueue.jobs AS j
                  WHERE j.id = ANY(chosen) GROUP BY j.queue) AS c
            JOIN pgqueue.queue_limits AS l ON l.queue = c.queue
            WHERE l.rate_limit IS NOT NULL
        LOOP
            INSERT INTO pgqueue.queue_rate_starts AS r (queue, slot, started_at)
            SELECT ring.queue, (ring.rate_next + n) % ring.rate_limit, started_at
            FROM generate_series(0, ring.started - 1) AS n
            ON CONFLICT (queue, slot) DO UPDATE SET started_at = excluded.started_at;
            UPDATE pgqueue.queue_limits AS l
            SET rate_next = (ring.rate_next + ring.started) % ring.rate_limit
            WHERE l.queue = ring.queue;
        END LOOP;
        PERFORM set_config('pgqueue.claim_started_at', started_at::text, true);
    END IF;
    RETURN chosen;
END;
$$;
COMMENT ON FUNCTION pgqueue.claimable_job_ids(integer, text[], text[]) IS
    'Locks and returns the ids of up to max_jobs due jobs in claim order (every queue when served_queues is NULL, every task when served_tasks is NULL), within queue limits, skipping paused queues and rows other sessions hold; the worker''s claim marks them running. When a rate limit counted the starts, the instant they were recorded at is left in the transaction''s setting pgqueue.claim_started_at for the claim to stamp jobs.started_at with.';

INSERT INTO pgqueue.migrations (name) VALUES ('0026_rate_stamp_plan');
