-- pgqueue 0003: the DBA surface. Views that answer "what is stuck, what is slow, what failed"
-- and functions that fix it, from psql alone. Documented in docs/sql.md; `\d+ pgqueue.<name>`
-- and `\df+ pgqueue.*` show a comment on every object.
--
-- Thresholds the views use are settings a DBA can change without a migration, per database,
-- role or session (they are read with current_setting(..., missing_ok => true)):
--   pgqueue.heartbeat_timeout  seconds of heartbeat silence after which a worker is dead (30,
--                              the worker's own default heartbeat_timeout)
--   pgqueue.stuck_after        seconds a running job without a recorded timeout may run before
--                              pgqueue.stuck_jobs lists it (3600)
-- e.g. ALTER DATABASE app SET pgqueue.stuck_after = 600;

-- ---------------------------------------------------------------------------------------------
-- Schema additions
-- ---------------------------------------------------------------------------------------------

-- Nullable and without a default, so adding it rewrites nothing; the CHECK is NOT VALID so it
-- does not scan existing rows (they are all NULL) under the ALTER's exclusive lock.
ALTER TABLE pgqueue.jobs ADD COLUMN timeout_seconds double precision;
ALTER TABLE pgqueue.jobs ADD CONSTRAINT jobs_timeout_seconds_check
    CHECK (timeout_seconds > 0) NOT VALID;
COMMENT ON COLUMN pgqueue.jobs.timeout_seconds IS
    'Timeout of the task when the job was enqueued (NULL: none recorded); pgqueue.stuck_jobs lists a running job past it, else past the pgqueue.stuck_after setting.';

CREATE TABLE pgqueue.paused_queues (
    queue     text PRIMARY KEY CHECK (length(queue) BETWEEN 1 AND 200),
    paused_at timestamptz NOT NULL DEFAULT now(),
    paused_by text NOT NULL DEFAULT current_user,
    reason    text
);
COMMENT ON TABLE pgqueue.paused_queues IS
    'Queues workers do not claim from. Write it with pgqueue.pause_queue() / pgqueue.resume_queue(); running jobs finish normally.';
COMMENT ON COLUMN pgqueue.paused_queues.paused_by IS 'Database role that paused the queue.';
COMMENT ON COLUMN pgqueue.paused_queues.reason IS 'Free text for the next operator.';

-- ---------------------------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION pgqueue.setting_seconds(setting_name text, fallback double precision)
RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('pgqueue.' || setting_name, true), '')::float8,
                    fallback)
$$;
COMMENT ON FUNCTION pgqueue.setting_seconds(text, double precision) IS
    'Value of the setting pgqueue.<setting_name> in seconds, or fallback when it is not set (see docs/sql.md: heartbeat_timeout, stuck_after).';

-- ---------------------------------------------------------------------------------------------
-- Views: seeing the queue. Durations and ages are seconds, rounded to the millisecond.
-- ---------------------------------------------------------------------------------------------

-- Counting by state reads every row of pgqueue.jobs (finished rows included); on a table of
-- millions of rows, query it every few seconds at most. Wait = started_at - run_at of the
-- attempts that started in the last 5 minutes: the time a due job waited for a worker.
CREATE VIEW pgqueue.queue_stats AS
WITH depth AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'queued') AS queued,
           count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS due,
           count(*) FILTER (WHERE state = 'queued' AND run_at > now()) AS scheduled,
           count(*) FILTER (WHERE state = 'running') AS running,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
           min(run_at) FILTER (WHERE state = 'queued' AND run_at <= now()) AS oldest_due_at
    FROM pgqueue.jobs
    GROUP BY queue
), recent_waits AS (
    -- state <> 'queued' and started_at >= run_at leave out the stale started_at a job keeps
    -- from an earlier attempt while it waits for its next one.
    SELECT queue,
           count(*) AS started_5m,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - run_at))
               AS wait_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - run_at))
               AS wait_p95
    FROM pgqueue.jobs
    WHERE started_at >= now() - interval '5 minutes'
      AND state <> 'queued'
      AND started_at >= run_at
    GROUP BY queue
), queues AS (
    SELECT queue FROM depth
    UNION
    SELECT queue FROM pgqueue.paused_queues
)
SELECT q.queue,
       (p.queue IS NOT NULL) AS paused,
       coalesce(d.queued, 0) AS queued,
       coalesce(d.due, 0) AS due,
       coalesce(d.scheduled, 0) AS scheduled,
       coalesce(d.running, 0) AS running,
       coalesce(d.succeeded, 0) AS succeeded,
       coalesce(d.failed, 0) AS failed,
       coalesce(d.cancelled, 0) AS cancelled,
       round(extract(epoch FROM now() - d.oldest_due_at), 3)::float8 AS oldest_waiting_seconds,
       coalesce(w.started_5m, 0) AS started_5m,
       round(w.wait_p50::numeric, 3)::float8 AS wait_p50_seconds,
       round(w.wait_p95::numeric, 3)::float8 AS wait_p95_seconds
FROM queues q
LEFT JOIN depth d ON d.queue = q.queue
LEFT JOIN recent_waits w ON w.queue = q.queue
LEFT JOIN pgqueue.paused_queues p ON p.queue = q.queue
ORDER BY q.queue;
COMMENT ON VIEW pgqueue.queue_stats IS
    'One row per queue: depth by state, age of the oldest due job, p50/p95 wait of the last 5 minutes. Reads the whole jobs table.';
COMMENT ON COLUMN pgqueue.queue_stats.paused IS 'True while pgqueue.pause_queue() holds the queue: workers do not claim from it.';
COMMENT ON COLUMN pgqueue.queue_stats.queued IS 'Jobs in state queued (due + scheduled).';
COMMENT ON COLUMN pgqueue.queue_stats.due IS 'Queued jobs whose run_at has passed: waiting for a worker now.';
COMMENT ON COLUMN pgqueue.queue_stats.scheduled IS 'Queued jobs whose run_at is still in the future (scheduled, or waiting to retry).';
COMMENT ON COLUMN pgqueue.queue_stats.oldest_waiting_seconds IS 'Seconds the oldest due job has waited since its run_at (NULL: none waiting).';
COMMENT ON COLUMN pgqueue.queue_stats.started_5m IS 'Attempts started in the last 5 minutes (the sample of the wait percentiles).';
COMMENT ON COLUMN pgqueue.queue_stats.wait_p50_seconds IS 'Median of started_at - run_at over attempts started in the last 5 minutes.';
COMMENT ON COLUMN pgqueue.queue_stats.wait_p95_seconds IS '95th percentile of started_at - run_at over attempts started in the last 5 minutes.';

-- Windows are read from the finished_at index (jobs_finished_at_idx) and the partial indexes
-- of queued and running jobs, so this view stays cheap however many old jobs the table holds.
CREATE VIEW pgqueue.task_stats AS
WITH live AS (
    SELECT task_name,
           count(*) FILTER (WHERE state = 'queued') AS queued,
           count(*) FILTER (WHERE state = 'running') AS running,
           count(*) FILTER (WHERE state = 'queued' AND attempts > 0) AS retrying
    FROM pgqueue.jobs
    WHERE state IN ('queued', 'running')
    GROUP BY task_name
), finished AS (
    SELECT task_name,
           count(*) FILTER (WHERE state = 'succeeded' AND finished_at >= now() - interval '1 minute') AS succeeded_1m,
           count(*) FILTER (WHERE state = 'failed' AND finished_at >= now() - interval '1 minute') AS failed_1m,
           count(*) FILTER (WHERE state = 'succeeded' AND finished_at >= now() - interval '5 minutes') AS succeeded_5m,
           count(*) FILTER (WHERE state = 'failed' AND finished_at >= now() - interval '5 minutes') AS failed_5m,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded_1h,
           count(*) FILTER (WHERE state = 'failed') AS failed_1h,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled_1h,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
               FILTER (WHERE state IN ('succeeded', 'failed') AND started_at <= finished_at)
               AS duration_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
               FILTER (WHERE state IN ('succeeded', 'failed') AND started_at <= finished_at)
               AS duration_p95,
           max(finished_at) FILTER (WHERE state = 'failed') AS last_failed_at,
           (array_agg(concat_ws(': ', error_type, error_message) ORDER BY finished_at DESC)
               FILTER (WHERE state = 'failed'))[1] AS last_error
    FROM pgqueue.jobs
    WHERE state IN ('succeeded', 'failed', 'cancelled')
      AND finished_at >= now() - interval '1 hour'
    GROUP BY task_name
)
SELECT coalesce(l.task_name, f.task_name) AS task_name,
       coalesce(l.queued, 0) AS queued,
       coalesce(l.running, 0) AS running,
       coalesce(l.retrying, 0) AS retrying,
       coalesce(f.succeeded_1m, 0) AS succeeded_1m,
       coalesce(f.failed_1m, 0) AS failed_1m,
       coalesce(f.succeeded_5m, 0) AS succeeded_5m,
       coalesce(f.failed_5m, 0) AS failed_5m,
       coalesce(f.succeeded_1h, 0) AS succeeded_1h,
       coalesce(f.failed_1h, 0) AS failed_1h,
       coalesce(f.cancelled_1h, 0) AS cancelled_1h,
       round(coalesce(f.succeeded_5m + f.failed_5m, 0) / 5.0, 2)::float8 AS per_minute_5m,
       round(f.failed_5m::numeric / nullif(f.succeeded_5m + f.failed_5m, 0), 4)::float8
           AS error_rate_5m,
       round(f.failed_1h::numeric / nullif(f.succeeded_1h + f.failed_1h, 0), 4)::float8
           AS error_rate_1h,
       round(f.duration_p50::numeric, 3)::float8 AS duration_p50_seconds,
       round(f.duration_p95::numeric, 3)::float8 AS duration_p95_seconds,
       f.last_failed_at,
       left(f.last_error, 500) AS last_error
FROM live l
FULL JOIN finished f ON f.task_name = l.task_name
ORDER BY coalesce(f.failed_1h, 0) DESC, coalesce(l.task_name, f.task_name);
COMMENT ON VIEW pgqueue.task_stats IS
    'One row per task active in the last hour: queued/running now, outcomes in the last 1 minute, 5 minutes and 1 hour, error rates, duration percentiles, last error. Failing tasks first.';
COMMENT ON COLUMN pgqueue.task_stats.retrying IS 'Queued jobs that already spent an attempt (waiting to retry after an error).';
COMMENT ON COLUMN pgqueue.task_stats.per_minute_5m IS 'Jobs finished (succeeded or failed) per minute over the last 5 minutes.';
COMMENT ON COLUMN pgqueue.task_stats.error_rate_5m IS 'failed / (succeeded + failed) over the last 5 minutes, 0..1 (NULL: none finished). Failed means out of attempts; retried attempts do not count.';
COMMENT ON COLUMN pgqueue.task_stats.error_rate_1h IS 'failed / (succeeded + failed) over the last hour, 0..1 (NULL: none finished).';
COMMENT ON COLUMN pgqueue.task_stats.duration_p50_seconds IS 'Median run time (finished_at - started_at of the last attempt) of jobs finished in the last hour.';
COMMENT ON COLUMN pgqueue.task_stats.duration_p95_seconds IS '95th percentile run time of jobs finished in the last hour.';
COMMENT ON COLUMN pgqueue.task_stats.last_error IS 'error_type: error_message of the latest failure in the last hour (first 500 characters).';

CREATE VIEW pgqueue.stuck_jobs AS
SELECT j.id,
       j.queue,
       j.task_name,
       CASE WHEN w.id IS NULL THEN 'worker_missing'
            WHEN w.last_heartbeat_at < now() - make_interval(secs => s.heartbeat_timeout)
                THEN 'worker_dead'
            ELSE 'timeout_exceeded'
       END AS reason,
       j.worker_id,
       w.name AS worker_name,
       w.hostname AS worker_hostname,
       w.pid AS worker_pid,
       CASE WHEN isfinite(w.last_heartbeat_at)
            THEN round(extract(epoch FROM now() - w.last_heartbeat_at), 3)::float8
       END AS heartbeat_age_seconds,
       j.started_at,
       round(extract(epoch FROM now() - j.started_at), 3)::float8 AS running_seconds,
       coalesce(j.timeout_seconds, s.stuck_after) AS limit_seconds,
       j.attempts,
       j.max_attempts,
       j.abort_requested
FROM pgqueue.jobs j
CROSS JOIN LATERAL (
    SELECT pgqueue.setting_seconds('heartbeat_timeout', 30) AS heartbeat_timeout,
           pgqueue.setting_seconds('stuck_after', 3600) AS stuck_after
) s
LEFT JOIN pgqueue.workers w ON w.id = j.worker_id
WHERE j.state = 'running'
  AND (w.id IS NULL
       OR w.last_heartbeat_at < now() - make_interval(secs => s.heartbeat_timeout)
       OR j.started_at < now() - make_interval(secs => coalesce(j.timeout_seconds, s.stuck_after)))
ORDER BY j.started_at;
COMMENT ON VIEW pgqueue.stuck_jobs IS
    'Running jobs that need a look: held by a missing or dead worker (heartbeat older than the pgqueue.heartbeat_timeout setting, 30 s) or running past their timeout (pgqueue.stuck_after, 3600 s, when none was recorded). Fix with pgqueue.cancel_job(id); jobs of dead workers are rescued by any live worker.';
COMMENT ON COLUMN pgqueue.stuck_jobs.reason IS 'worker_missing: no worker row holds it; worker_dead: its worker stopped heartbeating; timeout_exceeded: running longer than limit_seconds.';
COMMENT ON COLUMN pgqueue.stuck_jobs.heartbeat_age_seconds IS 'Seconds since its worker last heartbeat (NULL: worker missing, or marked dead by its supervisor).';
COMMENT ON COLUMN pgqueue.stuck_jobs.limit_seconds IS 'The job''s recorded timeout_seconds, else the pgqueue.stuck_after setting.';
COMMENT ON COLUMN pgqueue.stuck_jobs.abort_requested IS 'True when a cancel was already asked for and the worker has not acted on it.';

CREATE VIEW pgqueue.workers_overview AS
SELECT w.id,
       w.name,
       w.hostname,
       w.pid,
       w.queues,
       w.concurrency,
       (w.last_heartbeat_at >= now() - make_interval(secs => pgqueue.setting_seconds('heartbeat_timeout', 30)))
           AS alive,
       CASE WHEN isfinite(w.last_heartbeat_at)
            THEN round(extract(epoch FROM now() - w.last_heartbeat_at), 3)::float8
       END AS heartbeat_age_seconds,
       w.started_at,
       round(extract(epoch FROM now() - w.started_at), 3)::float8 AS uptime_seconds,
       coalesce(r.running_jobs, 0) AS running_jobs,
       r.running_job_ids,
       r.running_tasks,
       r.longest_running_seconds
FROM pgqueue.workers w
LEFT JOIN LATERAL (
    SELECT count(*) AS running_jobs,
           array_agg(j.id ORDER BY j.id) AS running_job_ids,
           array_agg(DISTINCT j.task_name) AS running_tasks,
           round(extract(epoch FROM now() - min(j.started_at)), 3)::float8 AS longest_running_seconds
    FROM pgqueue.jobs j
    WHERE j.worker_id = w.id AND j.state = 'running'
) r ON true
ORDER BY alive DESC, w.id;
COMMENT ON VIEW pgqueue.workers_overview IS
    'Every registered worker: alive or not (pgqueue.heartbeat_timeout setting, 30 s), heartbeat age, uptime, and the jobs it is running now.';
COMMENT ON COLUMN pgqueue.workers_overview.queues IS 'Queues the worker claims from; NULL means every queue.';
COMMENT ON COLUMN pgqueue.workers_overview.heartbeat_age_seconds IS 'Seconds since its last heartbeat (NULL: marked dead by its supervisor).';
COMMENT ON COLUMN pgqueue.workers_overview.alive IS 'Heartbeat newer than the pgqueue.heartbeat_timeout setting; dead rows are deleted by live workers after 10 timeouts.';
COMMENT ON COLUMN pgqueue.workers_overview.running_job_ids IS 'Ids of the jobs it runs now (NULL: idle).';
COMMENT ON COLUMN pgqueue.workers_overview.running_tasks IS 'Distinct task names it runs now.';
COMMENT ON COLUMN pgqueue.workers_overview.longest_running_seconds IS 'Age of its oldest running attempt.';

-- One row; use \x in psql. Row counts by state read the whole table; the rest is statistics.
CREATE VIEW pgqueue.health AS
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
          AND a.backend_xmin IS NOT NULL) AS oldest_transaction_seconds
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
COMMENT ON VIEW pgqueue.health IS
    'One row: jobs by state, dead tuples and vacuum history of the queue tables, live workers, NOTIFY queue usage and the oldest open transaction (which holds back vacuum). Reads the whole jobs table.';
COMMENT ON COLUMN pgqueue.health.jobs_dead_ratio IS 'Dead / (live + dead) tuples of pgqueue.jobs from the statistics collector; high and climbing means vacuum cannot keep up or is held back.';
COMMENT ON COLUMN pgqueue.health.jobs_last_autovacuum IS 'Last autovacuum of pgqueue.jobs; a busy queue table should show minutes, not days.';
COMMENT ON COLUMN pgqueue.health.notification_queue_usage IS 'pg_notification_queue_usage(): fraction (0..1) of the NOTIFY queue in use; near 1, NOTIFY fails and wake-ups fall back to polling.';
COMMENT ON COLUMN pgqueue.health.oldest_transaction_seconds IS 'Age of the oldest transaction in this database holding a snapshot (other than this query); long ones stop vacuum from removing dead jobs. NULL for sessions of other roles unless you have pg_read_all_stats.';

-- ---------------------------------------------------------------------------------------------
-- Functions: steering the queue. All SECURITY INVOKER: they can do only what the caller's own
-- table privileges allow (see migrations_sql/roles.sql).
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION pgqueue.retry_job(job_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pgqueue.jobs
    SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, worker_id = NULL,
        claim_token = NULL, abort_requested = false
    WHERE id = retry_job.job_id AND state IN ('failed', 'cancelled', 'succeeded');
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('pgqueue_jobs', '');
    RETURN true;
END;
$$;
COMMENT ON FUNCTION pgqueue.retry_job(bigint) IS
    'Queue a finished job (failed, cancelled or succeeded) again now with a fresh attempt budget, and wake the workers. False if the job is not finished or does not exist.';

CREATE FUNCTION pgqueue.cancel_job(job_id bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    new_state text;
    held_by bigint;
BEGIN
    UPDATE pgqueue.jobs
    SET state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END::pgqueue.job_state,
        finished_at = CASE WHEN state = 'queued' THEN now() ELSE finished_at END,
        abort_requested = (state = 'running')
    WHERE id = cancel_job.job_id AND state IN ('queued', 'running')
    RETURNING state::text, worker_id INTO new_state, held_by;
    IF held_by IS NOT NULL THEN
        -- The worker acts on it now; were the notification missed, at its next heartbeat.
        PERFORM pg_notify('pgqueue_abort', held_by::text);
    END IF;
    RETURN new_state;
END;
$$;
COMMENT ON FUNCTION pgqueue.cancel_job(bigint) IS
    'Cancel a queued job at once (returns ''cancelled''), or ask the worker running it to abort (returns ''running''; the worker records it cancelled). NULL if the job is already finished or does not exist.';

CREATE FUNCTION pgqueue.retry_failed(task_name text, since timestamptz,
                                     queue_name text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    retried integer;
BEGIN
    UPDATE pgqueue.jobs AS j
    SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, worker_id = NULL,
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
COMMENT ON FUNCTION pgqueue.retry_failed(text, timestamptz, text) IS
    'Queue again every job that failed since `since` (task_name NULL: every task; queue_name optional), with a fresh attempt budget. Returns how many.';

CREATE FUNCTION pgqueue.pause_queue(queue_name text, reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgqueue.paused_queues (queue, reason)
    VALUES (pause_queue.queue_name, pause_queue.reason)
    ON CONFLICT (queue) DO NOTHING;
    RETURN FOUND;
END;
$$;
COMMENT ON FUNCTION pgqueue.pause_queue(text, text) IS
    'Stop workers claiming from a queue (jobs can still be enqueued; running ones finish). True if it was not paused already.';

CREATE FUNCTION pgqueue.resume_queue(queue_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgqueue.paused_queues WHERE queue = resume_queue.queue_name;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('pgqueue_jobs', json_build_object('queues', ARRAY[resume_queue.queue_name])::text);
    RETURN true;
END;
$$;
COMMENT ON FUNCTION pgqueue.resume_queue(text) IS
    'Let workers claim from a paused queue again, and wake them. True if it was paused.';

-- One batch in the caller's transaction; pgqueue.prune (below) loops over it with a COMMIT
-- between batches. SKIP LOCKED: a row an operator is retrying right now is left for next time.
CREATE FUNCTION pgqueue.prune_batch(
    succeeded_older_than interval DEFAULT interval '7 days',
    failed_older_than    interval DEFAULT interval '30 days',
    cancelled_older_than interval DEFAULT interval '7 days',
    batch_size           integer DEFAULT 5000
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    deleted integer;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'pgqueue.prune: batch_size must be >= 1, not %', batch_size;
    END IF;
    IF succeeded_older_than < interval '0' OR failed_older_than < interval '0'
       OR cancelled_older_than < interval '0' THEN
        RAISE EXCEPTION 'pgqueue.prune: ages must not be negative';
    END IF;
    WITH doomed AS (
        SELECT id FROM pgqueue.jobs
        WHERE (state = 'succeeded' AND finished_at < now() - succeeded_older_than)
           OR (state = 'failed' AND finished_at < now() - failed_older_than)
           OR (state = 'cancelled' AND finished_at < now() - cancelled_older_than)
        LIMIT batch_size
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM pgqueue.jobs AS j USING doomed WHERE j.id = doomed.id;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END;
$$;
COMMENT ON FUNCTION pgqueue.prune_batch(interval, interval, interval, integer) IS
    'Delete at most batch_size finished jobs older (by finished_at) than the age given for their state (NULL age: keep that state); returns how many. Runs in the caller''s transaction; from psql prefer CALL pgqueue.prune().';

-- A procedure, not a function, so it can COMMIT between batches: locks are held for one batch
-- and vacuum can reclaim the space while the rest is being deleted. CALL it outside an
-- explicit transaction (psql autocommit, cron); inside one, loop over prune_batch instead.
CREATE PROCEDURE pgqueue.prune(
    succeeded_older_than interval DEFAULT interval '7 days',
    failed_older_than    interval DEFAULT interval '30 days',
    cancelled_older_than interval DEFAULT interval '7 days',
    batch_size           integer DEFAULT 5000,
    INOUT deleted        bigint DEFAULT 0
)
LANGUAGE plpgsql AS $$
DECLARE
    batch integer;
BEGIN
    deleted := coalesce(deleted, 0);
    LOOP
        batch := pgqueue.prune_batch(succeeded_older_than, failed_older_than,
                                     cancelled_older_than, batch_size);
        deleted := deleted + batch;
        COMMIT;
        EXIT WHEN batch < batch_size;
    END LOOP;
END;
$$;
COMMENT ON PROCEDURE pgqueue.prune(interval, interval, interval, integer, bigint) IS
    'CALL pgqueue.prune(): delete finished jobs older than 7 days (succeeded, cancelled) or 30 days (failed), batch_size rows per transaction; returns deleted. Pass NULL as an age to keep that state.';

INSERT INTO pgqueue.migrations (name) VALUES ('0003_dba_surface');
