-- pgqueue 0010: queue limits enforced by the database, exact across any number of workers.
--
--   concurrency           at most N jobs of the queue running at once, on all workers together;
--   per_key_concurrency   at most N running at once per concurrency_key (a job column);
--   rate_limit            at most N job starts in any window of the period ("100/m").
--
-- A claim that touches a limited queue locks that queue's row of pgqueue.queue_limits until it
-- commits, so claims on one limited queue are serialized and each one counts what the previous
-- one started: the limits hold under any race (a worker killed mid-job holds its slot until the
-- rescue puts the job back; nothing leaks, nothing is granted twice). Queues without a row are
-- claimed as before, and with no row at all the claim takes its unlimited path (one probe of
-- this small table).

CREATE TABLE pgqueue.queue_limits (
    queue               text PRIMARY KEY CHECK (length(queue) BETWEEN 1 AND 200),
    concurrency         integer CHECK (concurrency > 0),
    per_key_concurrency integer CHECK (per_key_concurrency > 0),
    rate_limit          integer CHECK (rate_limit > 0),
    rate_period         interval CHECK (rate_period > interval '0'),
    recent_starts       timestamptz[] NOT NULL DEFAULT '{}',
    set_by              text NOT NULL DEFAULT 'operator' CHECK (set_by IN ('code', 'operator')),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((rate_limit IS NULL) = (rate_period IS NULL))
);
COMMENT ON TABLE pgqueue.queue_limits IS
    'Per-queue limits every worker obeys (pgqueue.set_queue_limit, `pgqueue queue`, App.queue()). A queue without a row has none.';
COMMENT ON COLUMN pgqueue.queue_limits.recent_starts IS
    'Start times of the last rate_limit jobs (the sliding window of the rate limit).';
COMMENT ON COLUMN pgqueue.queue_limits.set_by IS
    'code: declared by App.queue() (workers rewrite it at start); operator: set at runtime, which declarations leave alone.';

ALTER TABLE pgqueue.jobs ADD COLUMN concurrency_key text
    CONSTRAINT jobs_concurrency_key_check CHECK (length(concurrency_key) BETWEEN 1 AND 500);
COMMENT ON COLUMN pgqueue.jobs.concurrency_key IS
    'Counted against its queue''s per_key_concurrency: at most that many running per key.';
CREATE INDEX jobs_running_queue_idx ON pgqueue.jobs (queue, concurrency_key)
    WHERE state = 'running';

-- "100/m", "10/s", "1000/h", "5/d" (Celery's spelling) -> (count, period).
CREATE FUNCTION pgqueue.parse_rate_limit(rate text, OUT rate_limit integer, OUT rate_period interval)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    parts text[] := regexp_match(rate, '^\s*([0-9]{1,9})\s*/\s*(s|m|h|d)\s*$');
BEGIN
    IF parts IS NULL OR parts[1]::integer = 0 THEN
        RAISE EXCEPTION 'rate limit must look like 10/s, 100/m, 1000/h or 5/d (N > 0), not %', rate
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    rate_limit := parts[1]::integer;
    rate_period := CASE parts[2] WHEN 's' THEN interval '1 second' WHEN 'm' THEN interval '1 minute'
                                 WHEN 'h' THEN interval '1 hour' ELSE interval '1 day' END;
END;
$$;

-- One limit of one queue (NULL clears it); the row goes when no limit is left.
CREATE FUNCTION pgqueue.set_queue_limit(queue_name text, limit_name text, limit_value text,
                                        set_by text DEFAULT 'operator')
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    number integer;
    rate_count integer;
    rate_window interval;
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
    DELETE FROM pgqueue.queue_limits AS l
    WHERE l.queue = queue_name AND l.concurrency IS NULL AND l.per_key_concurrency IS NULL
      AND l.rate_limit IS NULL;
    -- More room, maybe: let idle workers look.
    PERFORM pg_notify('pgqueue_jobs', json_build_object('queues', ARRAY[queue_name])::text);
END;
$$;
COMMENT ON FUNCTION pgqueue.set_queue_limit(text, text, text, text) IS
    'Set (or with NULL clear) one limit of a queue for every worker at once: concurrency, per_key_concurrency (whole numbers) or rate_limit (''100/m'').';

CREATE OR REPLACE FUNCTION pgqueue.claimable_job_ids(max_jobs integer, served_queues text[])
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off SET jit = off
AS $$
DECLARE
    limited boolean := EXISTS (SELECT 1 FROM pgqueue.queue_limits);
    this_queue text;
    lim pgqueue.queue_limits;
    allowance integer;
    job_row record;
    taken_ids bigint[] := '{}';
    taken_priorities integer[] := '{}';
    taken_run_ats timestamptz[] := '{}';
    chosen bigint[];
    key_taken jsonb;
BEGIN
    IF NOT limited AND served_queues IS NULL AND NOT EXISTS (SELECT 1 FROM pgqueue.paused_queues) THEN
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
    IF NOT limited THEN
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
    END IF;
    -- Some queue has limits: one queue at a time, each limited one under its row lock.
    FOR this_queue IN SELECT DISTINCT s.queue FROM unnest(served_queues) AS s(queue)
                  WHERE NOT EXISTS (SELECT 1 FROM pgqueue.paused_queues AS p
                                    WHERE p.queue = s.queue) LOOP
        SELECT * INTO lim FROM pgqueue.queue_limits AS l WHERE l.queue = this_queue FOR UPDATE;
        allowance := max_jobs;
        IF FOUND AND lim.concurrency IS NOT NULL THEN
            allowance := least(allowance, lim.concurrency - (
                SELECT count(*) FROM pgqueue.jobs AS j
                WHERE j.queue = this_queue AND j.state = 'running')::integer);
        END IF;
        IF FOUND AND lim.rate_limit IS NOT NULL THEN
            allowance := least(allowance, lim.rate_limit - (
                SELECT count(*) FROM unnest(lim.recent_starts) AS s(started)
                WHERE s.started > now() - lim.rate_period)::integer);
        END IF;
        CONTINUE WHEN allowance <= 0;
        key_taken := '{}';
        FOR job_row IN
            SELECT j.id, j.priority, j.run_at, j.concurrency_key FROM pgqueue.jobs AS j
            WHERE j.state = 'queued' AND j.queue = this_queue AND j.run_at <= now()
            ORDER BY j.priority DESC, j.run_at, j.id
            FOR UPDATE SKIP LOCKED
        LOOP
            IF lim.per_key_concurrency IS NOT NULL AND job_row.concurrency_key IS NOT NULL THEN
                CONTINUE WHEN (SELECT count(*) FROM pgqueue.jobs AS j
                               WHERE j.queue = this_queue AND j.state = 'running'
                                 AND j.concurrency_key = job_row.concurrency_key)
                              + coalesce((key_taken ->> job_row.concurrency_key)::integer, 0)
                              >= lim.per_key_concurrency;
                key_taken := jsonb_set(key_taken, ARRAY[job_row.concurrency_key], to_jsonb(
                    coalesce((key_taken ->> job_row.concurrency_key)::integer, 0) + 1));
            END IF;
            taken_ids := taken_ids || job_row.id;
            taken_priorities := taken_priorities || job_row.priority;
            taken_run_ats := taken_run_ats || job_row.run_at;
            allowance := allowance - 1;
            EXIT WHEN allowance = 0;
        END LOOP;
        lim := NULL;
    END LOOP;
    chosen := ARRAY(SELECT t.id FROM unnest(taken_ids, taken_priorities, taken_run_ats)
                                     AS t(id, priority, run_at)
                    ORDER BY t.priority DESC, t.run_at, t.id LIMIT max_jobs);
    -- The rate limits' windows record the starts of the jobs chosen.
    UPDATE pgqueue.queue_limits AS l
    SET recent_starts = ARRAY(
        SELECT w.started FROM unnest(l.recent_starts || array_fill(now(), ARRAY[c.started]))
                              AS w(started)
        WHERE w.started > now() - l.rate_period
        ORDER BY w.started DESC LIMIT l.rate_limit)
    FROM (SELECT j.queue, count(*)::integer AS started FROM pgqueue.jobs AS j
          WHERE j.id = ANY(chosen) GROUP BY j.queue) AS c
    WHERE l.queue = c.queue AND l.rate_limit IS NOT NULL;
    RETURN chosen;
END;
$$;

INSERT INTO pgqueue.migrations (name) VALUES ('0010_queue_limits');
