-- pgqueue 0015: a worker claims only jobs of tasks it has.
--
-- Before, a worker claimed any due job of its queues and failed the ones whose task it did not
-- have with UnknownTask, spending their attempts: a worker deployed without a new task, or
-- another application's worker on a shared queue, burned those jobs to `failed`. Now the claim
-- takes the worker's task names (`served_tasks`, NULL: any task, for an app whose registry
-- resolves names it has not seen, like the Django app's) and walks past the others: they stay
-- `queued`, attempts untouched, until a worker that has the task claims them or an operator
-- acts, and pgqueue.unserved_jobs / health.unserved_jobs show them.
--
-- The filter is evaluated on the rows an index walk visits, after the index conditions; with
-- every visited row served (the normal case) the walk reads the same rows as before. Rows of
-- tasks the worker lacks that sort ahead of its own jobs are read and skipped at every claim:
-- that cost grows with how many such jobs are due (measured in docs/worker.md), which is why
-- they are shown to operators rather than left to pile up unseen.

ALTER TABLE pgqueue.workers ADD COLUMN tasks text[];
COMMENT ON COLUMN pgqueue.workers.tasks IS
    'Task names the worker runs (and so claims); NULL means any task (a registry that resolves names on demand).';

-- The old signature goes: a two-argument call (a worker not upgraded yet, during a rolling
-- deploy) still resolves to this function through the default, claiming any task as before.
DROP FUNCTION pgqueue.claimable_job_ids(integer, text[]);

CREATE FUNCTION pgqueue.claimable_job_ids(max_jobs integer, served_queues text[],
                                          served_tasks text[] DEFAULT NULL)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off SET jit = off
SET plan_cache_mode = force_generic_plan
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
    IF NOT limited THEN
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
              AND (served_tasks IS NULL OR j.task_name = ANY(served_tasks))
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
COMMENT ON FUNCTION pgqueue.claimable_job_ids(integer, text[], text[]) IS
    'Locks and returns the ids of up to max_jobs due jobs in claim order (every queue when served_queues is NULL, every task when served_tasks is NULL), within queue limits, skipping paused queues and rows other sessions hold; the worker''s claim marks them running.';

CREATE VIEW pgqueue.unserved_jobs AS
SELECT j.queue, j.task_name, count(*) AS due, min(j.run_at) AS oldest_run_at
FROM pgqueue.jobs AS j
WHERE j.state = 'queued' AND j.run_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM pgqueue.workers AS w
      WHERE w.last_heartbeat_at >= now() - make_interval(
                secs => pgqueue.setting_seconds('heartbeat_timeout', 30))
        AND (w.queues IS NULL OR j.queue = ANY(w.queues))
        AND (w.tasks IS NULL OR j.task_name = ANY(w.tasks)))
GROUP BY j.queue, j.task_name
ORDER BY j.queue, j.task_name;
COMMENT ON VIEW pgqueue.unserved_jobs IS
    'Due jobs no live worker can claim, per queue and task: no live worker has the task, or none serves the queue. They wait, attempts untouched, for a worker that has the task (deploy it) or an operator (cancel them, or fix task_name). Reads every queued job.';

CREATE OR REPLACE VIEW pgqueue.health AS
SELECT c.queued,
       c.running,
       c.succeeded,
       c.failed,
       c.cancelled,
       c.total AS total_jobs,
       t.n_live_tup AS jobs_live_tuples,
       t.n_dead_tup AS jobs_dead_tuples,
       round(t.n_dead_tup::numeric / nullif(t.n_live_tup + t.n_dead_tup, 0), 4)::float8
           AS jobs_dead_ratio,
       t.last_autovacuum AS jobs_last_autovacuum,
       t.last_vacuum AS jobs_last_vacuum,
       t.autovacuum_count AS jobs_autovacuum_count,
       t.last_autoanalyze AS jobs_last_autoanalyze,
       pg_total_relation_size('pgqueue.jobs'::regclass) AS jobs_total_bytes,
       wt.n_dead_tup AS workers_dead_tuples,
       wt.last_autovacuum AS workers_last_autovacuum,
       (SELECT count(*) FROM pgqueue.workers
        WHERE last_heartbeat_at >= now() - make_interval(
            secs => pgqueue.setting_seconds('heartbeat_timeout', 30))) AS live_workers,
       (SELECT count(*) FROM pgqueue.paused_queues) AS paused_queues,
       pg_notification_queue_usage() AS notification_queue_usage,
       (SELECT round(extract(epoch FROM now() - min(a.xact_start)), 3)::float8
        FROM pg_stat_activity a
        WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
          AND a.backend_xmin IS NOT NULL) AS oldest_transaction_seconds,
       (SELECT coalesce(sum(due), 0) FROM pgqueue.unserved_jobs)::bigint AS unserved_jobs
FROM (
    SELECT count(*) FILTER (WHERE state = 'queued') AS queued,
           count(*) FILTER (WHERE state = 'running') AS running,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
           count(*) AS total
    FROM pgqueue.jobs
) c
LEFT JOIN pg_stat_user_tables t ON t.relid = 'pgqueue.jobs'::regclass
LEFT JOIN pg_stat_user_tables wt ON wt.relid = 'pgqueue.workers'::regclass;
COMMENT ON COLUMN pgqueue.health.unserved_jobs IS
    'Due jobs no live worker can claim (pgqueue.unserved_jobs names their tasks); above 0 for long, a task is missing from every worker.';

INSERT INTO pgqueue.migrations (name) VALUES ('0015_served_tasks');
