-- pgqueue 0022: exact rate windows, a rate limit that costs a claim O(batch), and flow control
-- that a queue without limits or locks does not pay for.
--
-- 1. Rate windows in serialization order. A claim stamped its starts (jobs.started_at and the
--    rate window) with now(), the start of its transaction, but claims on a limited queue are
--    serialized by the queue's limits row lock, taken later. A claim that began before another
--    yet got the lock after it recorded starts "in the past", behind a window the other had
--    already checked and trimmed: 12 starts in one second under a 10/s limit (seen in
--    tests/reliability/test_limit_races.py). Now each queue's window is checked at
--    clock_timestamp() read after its row lock is held, and every start of the claim is
--    stamped with one instant taken after all its checks (never earlier than the newest start
--    recorded): stamps follow the order in which claims hold the lock, so no window of the
--    period ever holds more than N starts of jobs.started_at.
-- 2. The window as a ring of the last N start times, one row per start
--    (pgqueue.queue_rate_starts, slot 0..N-1), not an array rewritten on every claim: with the
--    stamps in ring order, a claim may start k jobs iff the k oldest slots from
--    queue_limits.rate_next are empty or older than the period (the N-th most recent start
--    left the window); it reads and rewrites k rows. CPU of a claim of 10 with 0, 10,000 and
--    50,000 starts in the window: 0.9, 6.1 and 27 ms with the array, 0.8, 0.9 and 0.75 ms with
--    the ring (benchmarks/flow_experiments.py ratewindow).
-- 3. Costs every claim paid for features it did not use:
--    - the BEFORE UPDATE OF state trigger that put a retried job back in its lock's line made
--      Postgres fetch and lock the old row of every updated row (claims and acknowledgements
--      included) before its WHEN clause could say no; the line is now re-entered by the retry
--      functions and queries themselves (pgqueue.lock_line_state);
--    - three CHECK constraints on the key columns, checked on every update: one now;
--    - two partial indexes of running jobs, (worker_id) and (queue, concurrency_key), so two
--      entries for every claimed job: one index (queue, concurrency_key, worker_id) now. The
--      queue limits count a queue's (or a key's) running jobs by its leading columns; a
--      worker's running jobs (heartbeat, views) are a filter over the running jobs' entries,
--      as many as the workers have slots;
--    - the claim of a queue whose limit row exists but has no rate limit or per-key limit
--      walked its jobs row by row in PL/pgSQL: one set-based walk now, and served queues
--      without a limits row take the unlimited path even when other queues have limits.
-- 4. The lock hand-over trigger ran on every finished job of a lock (~32 us a job) although
--    usually nothing waits: a job that makes another wait marks it (jobs.lock_waited_on), and
--    only the end of a marked job hands its lock on.

-- 1 and 2 ------------------------------------------------------------------------------------

CREATE TABLE pgqueue.queue_rate_starts (
    queue      text NOT NULL REFERENCES pgqueue.queue_limits (queue) ON DELETE CASCADE,
    slot       integer NOT NULL CHECK (slot >= 0),
    started_at timestamptz NOT NULL,
    PRIMARY KEY (queue, slot)
) WITH (fillfactor = 50);
COMMENT ON TABLE pgqueue.queue_rate_starts IS
    'The rate limit''s window of each queue: the start times of its last rate_limit job starts, a ring of slots 0..rate_limit-1 (queue_limits.rate_next is the oldest, the next to be overwritten). Rewritten in place (HOT) by every claim.';

ALTER TABLE pgqueue.queue_limits ADD COLUMN rate_next integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN pgqueue.queue_limits.rate_next IS
    'Slot of pgqueue.queue_rate_starts the next start overwrites: the oldest start kept (or the first free slot while the ring is filling).';

-- The windows kept so far (newest first, at most rate_limit entries), oldest in slot 0.
INSERT INTO pgqueue.queue_rate_starts (queue, slot, started_at)
SELECT l.queue, n - 1, l.recent_starts[cardinality(l.recent_starts) - n + 1]
FROM pgqueue.queue_limits AS l, generate_series(1, cardinality(l.recent_starts)) AS n
WHERE l.rate_limit IS NOT NULL;
UPDATE pgqueue.queue_limits SET rate_next = cardinality(recent_starts) % rate_limit
WHERE rate_limit IS NOT NULL;

CREATE OR REPLACE VIEW pgqueue.queue_flow AS
WITH jobs_by_queue AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS due,
           count(*) FILTER (WHERE state::text = 'waiting') AS waiting_on_lock,
           count(*) FILTER (WHERE state = 'running') AS running
    FROM pgqueue.jobs
    WHERE state NOT IN ('succeeded', 'failed', 'cancelled')
    GROUP BY queue
), queues AS (
    SELECT queue FROM jobs_by_queue
    UNION SELECT queue FROM pgqueue.queue_limits
    UNION SELECT queue FROM pgqueue.paused_queues
), windows AS (
    SELECT l.queue, (SELECT count(*) FROM pgqueue.queue_rate_starts AS r
                     WHERE r.queue = l.queue AND r.started_at > now() - l.rate_period) AS started
    FROM pgqueue.queue_limits AS l
    WHERE l.rate_limit IS NOT NULL
)
SELECT q.queue,
       coalesce(j.due, 0) AS due,
       coalesce(j.running, 0) AS running,
       l.concurrency,
       l.per_key_concurrency,
       CASE WHEN l.rate_limit IS NOT NULL
            THEN l.rate_limit || ' per ' || l.rate_period END AS rate_limit,
       w.started AS started_in_rate_window,
       coalesce(j.waiting_on_lock, 0) AS waiting_on_lock,
       p.queue IS NOT NULL AS paused,
       CASE WHEN coalesce(j.due, 0) = 0 THEN NULL
            WHEN p.queue IS NOT NULL THEN 'paused'
            WHEN l.concurrency IS NOT NULL AND coalesce(j.running, 0) >= l.concurrency
                THEN 'concurrency limit reached'
            WHEN w.started >= l.rate_limit THEN 'rate limit reached'
            WHEN l.per_key_concurrency IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM pgqueue.jobs AS d
                WHERE d.state = 'queued' AND d.queue = q.queue AND d.run_at <= now()
                  AND (d.concurrency_key IS NULL OR (
                      SELECT count(*) FROM pgqueue.jobs AS r
                      WHERE r.state = 'running' AND r.queue = q.queue
                        AND r.concurrency_key = d.concurrency_key) < l.per_key_concurrency))
                THEN 'per-key limit reached'
       END AS held_back_by
FROM queues AS q
LEFT JOIN jobs_by_queue AS j ON j.queue = q.queue
LEFT JOIN pgqueue.queue_limits AS l ON l.queue = q.queue
LEFT JOIN windows AS w ON w.queue = q.queue
LEFT JOIN pgqueue.paused_queues AS p ON p.queue = q.queue
ORDER BY q.queue;

ALTER TABLE pgqueue.queue_limits DROP COLUMN recent_starts;

-- A rate limit changed: the ring is renumbered for the new N, keeping the newest starts (a
-- new, lower N still sees the starts of the last period); cleared, it is emptied.
CREATE OR REPLACE FUNCTION pgqueue.set_queue_limit(queue_name text, limit_name text,
                                                   limit_value text,
                                                   set_by text DEFAULT 'operator')
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    number integer;
    rate_count integer;
    rate_window interval;
    kept timestamptz[];
BEGIN
    IF limit_name NOT IN ('concurrency', 'per_key_concurrency', 'rate_limit') THEN
        RAISE EXCEPTION 'limit must be concurrency, per_key_concurrency or rate_limit, not %',
            limit_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF limit_value IS NOT NULL AND limit_name <> 'rate_limit' THEN
        IF limit_value !~ '^\s*[0-9]{1,9}\s*$' OR limit_value::integer = 0 THEN
            RAISE EXCEPTION '% must be a whole number > 0, not %', limit_name, limit_value
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        number := limit_value::integer;
    END IF;
    IF limit_value IS NOT NULL AND limit_name = 'rate_limit' THEN
        SELECT p.rate_limit, p.rate_period INTO rate_count, rate_window
        FROM pgqueue.parse_rate_limit(limit_value) AS p;
    END IF;
    INSERT INTO pgqueue.queue_limits AS l (queue, set_by) VALUES (queue_name, set_queue_limit.set_by)
    ON CONFLICT (queue) DO UPDATE SET set_by = excluded.set_by, updated_at = now();
    UPDATE pgqueue.queue_limits AS l
    SET concurrency = CASE WHEN limit_name = 'concurrency' THEN number ELSE l.concurrency END,
        per_key_concurrency = CASE WHEN limit_name = 'per_key_concurrency' THEN number
                                   ELSE l.per_key_concurrency END,
        rate_limit = CASE WHEN limit_name = 'rate_limit' THEN rate_count ELSE l.rate_limit END,
        rate_period = CASE WHEN limit_name = 'rate_limit' THEN rate_window ELSE l.rate_period END
    WHERE l.queue = queue_name;
    IF limit_name = 'rate_limit' THEN
        kept := ARRAY(SELECT r.started_at FROM pgqueue.queue_rate_starts AS r
                      WHERE r.queue = queue_name
                      ORDER BY r.started_at DESC LIMIT coalesce(rate_count, 0));
        DELETE FROM pgqueue.queue_rate_starts AS r WHERE r.queue = queue_name;
        INSERT INTO pgqueue.queue_rate_starts (queue, slot, started_at)
        SELECT queue_name, n - 1, kept[cardinality(kept) - n + 1]
        FROM generate_series(1, cardinality(kept)) AS n;
        UPDATE pgqueue.queue_limits AS l
        SET rate_next = CASE WHEN rate_count IS NULL THEN 0
                             ELSE cardinality(kept) % rate_count END
        WHERE l.queue = queue_name;
    END IF;
    DELETE FROM pgqueue.queue_limits AS l
    WHERE l.queue = queue_name AND l.concurrency IS NULL AND l.per_key_concurrency IS NULL
      AND l.rate_limit IS NULL;
    -- More room, maybe: let idle workers look.
    PERFORM pg_notify('pgqueue_jobs', json_build_object('queues', ARRAY[queue_name])::text);
END;
$$;

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
            allowance := allowance - (
                SELECT count(*) FROM pgqueue.queue_rate_starts AS r
                WHERE r.queue = this_queue
                  AND r.slot = ANY(ARRAY(SELECT (lim.rate_next + n) % lim.rate_limit
                                         FROM generate_series(0, allowance - 1) AS n))
                  AND r.started_at > checked_at - lim.rate_period)::integer;
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
        started_at := greatest(clock_timestamp(), (
            SELECT max(r.started_at) FROM pgqueue.queue_limits AS l
            JOIN pgqueue.queue_rate_starts AS r
              ON r.queue = l.queue AND r.slot = (l.rate_next + l.rate_limit - 1) % l.rate_limit
            WHERE l.rate_limit IS NOT NULL
              AND l.queue IN (SELECT j.queue FROM pgqueue.jobs AS j WHERE j.id = ANY(chosen))));
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

-- 3 and 4: locks -----------------------------------------------------------------------------

ALTER TABLE pgqueue.jobs ADD COLUMN lock_waited_on boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN pgqueue.jobs.lock_waited_on IS
    'A job of the same lock waits behind this one: when it ends, it hands the lock on (jobs_lock_pass_on). False: it ends without looking.';
-- Jobs of a lock that others wait on now.
UPDATE pgqueue.jobs AS j SET lock_waited_on = true
WHERE j.lock IS NOT NULL AND j.state IN ('queued', 'running')
  AND EXISTS (SELECT 1 FROM pgqueue.jobs AS w WHERE w.lock = j.lock AND w.state::text = 'waiting');

-- A job is about to wait on a lock that an unfinished job of it holds: the holder is marked
-- (jobs.lock_waited_on), so that its end hands the lock on; true when the job must wait, false
-- when the holder ended meanwhile without handing on (nobody waited then): the lock is free.
-- The caller holds the lock's advisory lock. A holder whose acknowledgement is in flight holds
-- its row: the UPDATE waits for that commit and then skips the finished row, and the second
-- look (a new snapshot) sees it ended. An already marked holder is not touched (its end, which
-- takes the advisory lock after locking its row, would otherwise deadlock with us).
CREATE FUNCTION pgqueue.lock_line_mark(lock_name text, job_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    UPDATE pgqueue.jobs AS j SET lock_waited_on = true
    WHERE j.lock = lock_name AND j.id <> job_id AND j.state IN ('queued', 'running')
      AND NOT j.lock_waited_on;
    RETURN EXISTS (SELECT 1 FROM pgqueue.jobs AS j
                   WHERE j.lock = lock_name AND j.id <> job_id
                     AND j.state NOT IN ('succeeded', 'failed', 'cancelled'));
END;
$$;
COMMENT ON FUNCTION pgqueue.lock_line_mark(text, bigint) IS
    'Marks the holder of a lock a job is about to wait on (jobs.lock_waited_on); false when the lock turned out free.';

-- The state a finished job of a lock takes when an operator queues it again: waiting when an
-- unfinished job of its lock is ahead of it (or queued: the retry would break
-- jobs_lock_holder_idx), else queued. Serialized with inserts and hand-overs of the lock.
CREATE FUNCTION pgqueue.lock_line_state(lock_name text, job_id bigint)
RETURNS pgqueue.job_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('pgqueue.lock:' || lock_name, 0));
    IF EXISTS (SELECT 1 FROM pgqueue.jobs AS j
               WHERE j.lock = lock_name AND j.id <> job_id
                 AND j.state NOT IN ('succeeded', 'failed', 'cancelled'))
       AND pgqueue.lock_line_mark(lock_name, job_id) THEN
        RETURN 'waiting';
    END IF;
    RETURN 'queued';
END;
$$;
COMMENT ON FUNCTION pgqueue.lock_line_state(text, bigint) IS
    'waiting or queued: the state a finished job of a lock takes when queued again (pgqueue.retry_job, retry_failed, the retry queries), waiting when an unfinished job of the lock is ahead.';

DROP TRIGGER jobs_lock_enter_on_requeue ON pgqueue.jobs;

CREATE OR REPLACE FUNCTION pgqueue.retry_job(job_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pgqueue.jobs
    SET state = CASE WHEN lock IS NULL THEN 'queued'
                     ELSE pgqueue.lock_line_state(lock, id) END,
        run_at = now(), attempts = 0, finished_at = NULL, worker_id = NULL,
        claim_token = NULL, abort_requested = false
    WHERE id = retry_job.job_id AND state IN ('failed', 'cancelled', 'succeeded');
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('pgqueue_jobs', '');
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION pgqueue.retry_failed(task_name text, since timestamptz,
                                                queue_name text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    retried integer;
BEGIN
    UPDATE pgqueue.jobs AS j
    SET state = CASE WHEN j.lock IS NULL THEN 'queued'
                     ELSE pgqueue.lock_line_state(j.lock, j.id) END,
        run_at = now(), attempts = 0, finished_at = NULL, worker_id = NULL,
        claim_token = NULL, abort_requested = false
    WHERE j.state = 'failed'
      AND j.finished_at >= retry_failed.since
      AND (retry_failed.task_name IS NULL OR j.task_name = retry_failed.task_name)
      AND (retry_failed.queue_name IS NULL OR j.queue = retry_failed.queue_name);
    GET DIAGNOSTICS retried = ROW_COUNT;
    IF retried > 0 THEN
        PERFORM pg_notify('pgqueue_jobs', '');
    END IF;
    RETURN retried;
END;
$$;

DROP INDEX pgqueue.jobs_running_worker_idx;
DROP INDEX pgqueue.jobs_running_queue_idx;
CREATE INDEX jobs_running_idx ON pgqueue.jobs (queue, concurrency_key, worker_id)
    WHERE state = 'running';

-- Validated (one scan of the table): existing rows satisfied the three checks it replaces.
ALTER TABLE pgqueue.jobs
    DROP CONSTRAINT jobs_unique_key_check,
    DROP CONSTRAINT jobs_lock_check,
    DROP CONSTRAINT jobs_concurrency_key_check,
    ADD CONSTRAINT jobs_keys_check CHECK (length(unique_key) BETWEEN 1 AND 500
                                          AND length(lock) BETWEEN 1 AND 500
                                          AND length(concurrency_key) BETWEEN 1 AND 500);
COMMENT ON CONSTRAINT jobs_keys_check ON pgqueue.jobs IS
    'unique_key, lock and concurrency_key: 1 to 500 characters, or NULL (one check: each is evaluated on every update of a job).';

-- 4: the lock's triggers ------------------------------------------------------------------------

-- A job entering the line of a lock waits when an unfinished job of that lock is ahead of it,
-- and marks the one holding the lock.
CREATE OR REPLACE FUNCTION pgqueue.jobs_lock_enter() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('pgqueue.lock:' || NEW.lock, 0));
    IF NEW.state::text = 'queued' AND EXISTS (
            SELECT 1 FROM pgqueue.jobs AS j
            WHERE j.lock = NEW.lock AND j.id <> NEW.id
              AND j.state NOT IN ('succeeded', 'failed', 'cancelled')) THEN
        IF pgqueue.lock_line_mark(NEW.lock, NEW.id) THEN
            NEW.state := 'waiting';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

-- The job holding a lock finished (or was deleted) while others waited: the oldest waiting job
-- of the lock is queued (marked when more wait behind it), unless an unfinished job of it is
-- already queued or running.
CREATE OR REPLACE FUNCTION pgqueue.jobs_lock_pass_on() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    lock_name text := OLD.lock;
    next_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('pgqueue.lock:' || lock_name, 0));
    IF NOT EXISTS (SELECT 1 FROM pgqueue.jobs AS j
                   WHERE j.lock = lock_name AND j.state IN ('queued', 'running')) THEN
        SELECT j.id INTO next_id FROM pgqueue.jobs AS j
        WHERE j.lock = lock_name AND j.state NOT IN ('succeeded', 'failed', 'cancelled')
        ORDER BY j.id LIMIT 1;
        IF next_id IS NOT NULL THEN
            UPDATE pgqueue.jobs AS j
            SET state = 'queued',
                lock_waited_on = EXISTS (
                    SELECT 1 FROM pgqueue.jobs AS w
                    WHERE w.lock = lock_name AND w.id <> next_id
                      AND w.state NOT IN ('succeeded', 'failed', 'cancelled'))
            WHERE j.id = next_id;
            PERFORM pg_notify('pgqueue_jobs', '');
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER jobs_lock_pass_on_finish ON pgqueue.jobs;
CREATE TRIGGER jobs_lock_pass_on_finish AFTER UPDATE OF state ON pgqueue.jobs
    FOR EACH ROW WHEN (OLD.lock_waited_on AND NEW.state IN ('succeeded', 'failed', 'cancelled')
                       AND OLD.state NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION pgqueue.jobs_lock_pass_on();
DROP TRIGGER jobs_lock_pass_on_delete ON pgqueue.jobs;
CREATE TRIGGER jobs_lock_pass_on_delete AFTER DELETE ON pgqueue.jobs
    FOR EACH ROW WHEN (OLD.lock_waited_on AND OLD.state NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION pgqueue.jobs_lock_pass_on();

INSERT INTO pgqueue.migrations (name) VALUES ('0022_flow_fast_path');
