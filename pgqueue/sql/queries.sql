-- Every runtime query of pgqueue, one named block each: "-- name: <query_name>" followed by a
-- one-line comment saying why the query is shaped as it is. Loaded by pgqueue/queries.py.

-- name: insert_job
-- Enqueue one job; the statement trigger sends the wake-up NOTIFY.
INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts)
VALUES (%(task_name)s, %(queue)s, %(args)s, %(kwargs)s, %(priority)s,
        coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(max_attempts)s)
RETURNING id;

-- name: insert_jobs_many
-- Bulk enqueue in one statement (so one NOTIFY); arrays are unnested row by row.
INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts)
SELECT %(task_name)s, %(queue)s, a.args, a.kwargs, %(priority)s,
       coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(max_attempts)s
FROM unnest(%(args)s::jsonb[], %(kwargs)s::jsonb[]) AS a(args, kwargs)
RETURNING id;

-- name: claim_jobs_any_queue
-- Claim up to %(limit)s due jobs in claim order; the ORDER BY matches jobs_claim_order_idx so
-- the scan stops after the batch, and SKIP LOCKED lets concurrent workers pass each other.
WITH claimable AS (
    SELECT id FROM pgqueue.jobs
    WHERE state = 'queued' AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE pgqueue.jobs AS j
SET state = 'running', attempts = j.attempts + 1, worker_id = %(worker_id)s,
    claim_token = gen_random_uuid(), started_at = now(), abort_requested = false
FROM claimable
WHERE j.id = claimable.id
RETURNING j.id, j.task_name, j.queue, j.args, j.kwargs, j.priority, j.attempts, j.max_attempts,
          j.claim_token, j.enqueued_at, j.run_at;

-- name: claim_jobs_in_queues
-- As claim_jobs_any_queue, restricted to the worker's queues (jobs_queue_claim_order_idx).
WITH claimable AS (
    SELECT id FROM pgqueue.jobs
    WHERE state = 'queued' AND run_at <= now() AND queue = ANY(%(queues)s::text[])
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE pgqueue.jobs AS j
SET state = 'running', attempts = j.attempts + 1, worker_id = %(worker_id)s,
    claim_token = gen_random_uuid(), started_at = now(), abort_requested = false
FROM claimable
WHERE j.id = claimable.id
RETURNING j.id, j.task_name, j.queue, j.args, j.kwargs, j.priority, j.attempts, j.max_attempts,
          j.claim_token, j.enqueued_at, j.run_at;

-- name: seconds_until_next_job
-- How long an idle worker may sleep before a scheduled job becomes due (NULL: none queued).
SELECT greatest(0, extract(epoch FROM min(run_at) - now()))::float8
FROM pgqueue.jobs
WHERE state = 'queued' AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]));

-- name: mark_succeeded
-- Batch acknowledgement: one statement for many jobs; the claim token fences out lost claims.
UPDATE pgqueue.jobs AS j
SET state = 'succeeded', finished_at = now(), result = o.result, worker_id = NULL
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(results)s::jsonb[]) AS o(id, token, result)
WHERE j.id = o.id AND j.claim_token = o.token AND j.state = 'running'
RETURNING j.id;

-- name: delete_finished
-- --delete-jobs: drop the row instead of recording the outcome (still fenced by the token).
DELETE FROM pgqueue.jobs AS j
USING unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS o(id, token)
WHERE j.id = o.id AND j.claim_token = o.token AND j.state = 'running'
RETURNING j.id;

-- name: mark_failed
-- Final failure: the error is kept for the operator.
UPDATE pgqueue.jobs AS j
SET state = 'failed', finished_at = now(), worker_id = NULL,
    error_type = o.error_type, error_message = o.error_message, error_traceback = o.traceback
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(error_types)s::text[],
            %(error_messages)s::text[], %(tracebacks)s::text[])
     AS o(id, token, error_type, error_message, traceback)
WHERE j.id = o.id AND j.claim_token = o.token AND j.state = 'running'
RETURNING j.id;

-- name: mark_cancelled
-- A running job whose abort was requested ends cancelled.
UPDATE pgqueue.jobs AS j
SET state = 'cancelled', finished_at = now(), worker_id = NULL
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS o(id, token)
WHERE j.id = o.id AND j.claim_token = o.token AND j.state = 'running'
RETURNING j.id;

-- name: retry_later
-- Back to queued after a failed attempt (or pgqueue.Retry, which refunds the attempt).
UPDATE pgqueue.jobs AS j
SET state = 'queued', worker_id = NULL, claim_token = NULL,
    run_at = now() + make_interval(secs => o.delay), attempts = j.attempts - o.refund,
    error_type = o.error_type, error_message = o.error_message, error_traceback = o.traceback
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(delays)s::float8[], %(refunds)s::int[],
            %(error_types)s::text[], %(error_messages)s::text[], %(tracebacks)s::text[])
     AS o(id, token, delay, refund, error_type, error_message, traceback)
WHERE j.id = o.id AND j.claim_token = o.token AND j.state = 'running'
RETURNING j.id;

-- name: release_jobs
-- Shutdown: give back jobs that did not start or could not finish, without spending an attempt.
WITH released AS (
    UPDATE pgqueue.jobs AS j
    SET state = 'queued', worker_id = NULL, claim_token = NULL, attempts = j.attempts - 1
    FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS o(id, token)
    WHERE j.id = o.id AND j.claim_token = o.token AND j.state = 'running'
    RETURNING j.id
)
SELECT id FROM released, LATERAL (SELECT pg_notify('pgqueue_jobs', '')) AS wake;

-- name: rescue_stalled_jobs
-- Jobs held by a worker whose heartbeat is older than the timeout go back to queued (or to
-- failed when out of attempts). Row locks serialise this with a completion racing it: the
-- re-checked WHERE skips a job that just finished.
WITH live_workers AS (
    SELECT id FROM pgqueue.workers
    WHERE last_heartbeat_at > now() - make_interval(secs => %(heartbeat_timeout)s)
), rescued AS (
    UPDATE pgqueue.jobs AS j
    SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END::pgqueue.job_state,
        finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
        worker_id = NULL, claim_token = NULL,
        error_type = 'WorkerLost',
        error_message = format('worker %%s stopped heartbeating while running attempt %%s',
                               coalesce(j.worker_id::text, '?'), j.attempts),
        error_traceback = NULL
    WHERE j.state = 'running'
      AND (j.worker_id IS NULL OR j.worker_id NOT IN (SELECT id FROM live_workers))
      AND j.started_at < now() - make_interval(secs => %(heartbeat_timeout)s)
    RETURNING j.id, j.state
)
SELECT id, state::text FROM rescued, LATERAL (SELECT pg_notify('pgqueue_jobs', '')) AS wake;

-- name: delete_dead_workers
-- Forget workers that stopped heartbeating long ago (their jobs were rescued first).
DELETE FROM pgqueue.workers
WHERE last_heartbeat_at < now() - make_interval(secs => %(heartbeat_timeout)s) * 10
RETURNING id;

-- name: register_worker
INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency)
VALUES (%(name)s, %(hostname)s, %(pid)s, %(queues)s, %(concurrency)s)
RETURNING id;

-- name: heartbeat
-- Proves the worker alive and returns its running jobs whose abort was requested (so a cancel
-- takes effect even if a notification was missed).
WITH beat AS (
    UPDATE pgqueue.workers SET last_heartbeat_at = now() WHERE id = %(worker_id)s RETURNING id
)
SELECT (SELECT count(*) FROM beat)::int AS alive,
       coalesce((SELECT array_agg(id) FROM pgqueue.jobs
                 WHERE worker_id = %(worker_id)s AND state = 'running' AND abort_requested),
                '{}') AS abort_ids;

-- name: unregister_worker
DELETE FROM pgqueue.workers WHERE id = %(worker_id)s;

-- name: get_job
SELECT id, task_name, queue, args, kwargs, priority, state::text, run_at, attempts, max_attempts,
       worker_id, claim_token, abort_requested, enqueued_at, started_at, finished_at,
       error_type, error_message, error_traceback, result
FROM pgqueue.jobs WHERE id = %(id)s;

-- name: list_jobs
-- Newest first; every filter is optional.
SELECT id, task_name, queue, args, kwargs, priority, state::text, run_at, attempts, max_attempts,
       worker_id, claim_token, abort_requested, enqueued_at, started_at, finished_at,
       error_type, error_message, error_traceback, result
FROM pgqueue.jobs
WHERE (%(state)s::pgqueue.job_state IS NULL OR state = %(state)s::pgqueue.job_state)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(task_name)s::text IS NULL OR task_name = %(task_name)s::text)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: retry_job
-- Operator retry of a finished job: queued again now, with a fresh attempt budget.
WITH retried AS (
    UPDATE pgqueue.jobs
    SET state = 'queued', run_at = now(), attempts = 0, finished_at = NULL, worker_id = NULL,
        claim_token = NULL, abort_requested = false
    WHERE id = %(id)s AND state IN ('failed', 'cancelled', 'succeeded')
    RETURNING id
)
SELECT id FROM retried, LATERAL (SELECT pg_notify('pgqueue_jobs', '')) AS wake;

-- name: cancel_job
-- A queued job is cancelled at once; a running one gets an abort request its worker acts on
-- (told by NOTIFY now, or by its next heartbeat if the notification is missed).
WITH cancelled AS (
    UPDATE pgqueue.jobs
    SET state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END::pgqueue.job_state,
        finished_at = CASE WHEN state = 'queued' THEN now() ELSE finished_at END,
        abort_requested = (state = 'running')
    WHERE id = %(id)s AND state IN ('queued', 'running')
    RETURNING id, state::text AS state, worker_id
)
SELECT cancelled.state FROM cancelled
LEFT JOIN LATERAL (SELECT pg_notify('pgqueue_abort', cancelled.worker_id::text)
                   WHERE cancelled.worker_id IS NOT NULL) AS wake ON true;

-- name: queue_stats
-- Per queue: depth by state and the age of the oldest due job still waiting.
SELECT queue,
       count(*) FILTER (WHERE state = 'queued') AS queued,
       count(*) FILTER (WHERE state = 'running') AS running,
       count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE state = 'failed') AS failed,
       count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'queued' AND run_at <= now()))::float8
           AS oldest_waiting_seconds
FROM pgqueue.jobs
GROUP BY queue
ORDER BY queue;

-- name: applied_migrations
SELECT name FROM pgqueue.migrations ORDER BY name;

-- name: schema_exists
SELECT to_regclass('pgqueue.migrations') IS NOT NULL AS present;

-- name: lock_migrations
-- One migrator at a time: a transaction-level advisory lock, released at commit.
SELECT pg_try_advisory_xact_lock(hashtext('pgqueue.migrate')) AS locked;

-- ---------------------------------------------------------------------------------------------
-- DBA surface (issue 7): `pgqueue top` reads the views of migrations_sql/0003_dba_surface.sql
-- (so the read-only observer role can run it); the worker's metrics endpoint reads live counts.

-- name: observe_queue_stats
-- One row per queue: depth by state, oldest wait, wait percentiles of the last 5 minutes.
SELECT * FROM pgqueue.queue_stats;

-- name: observe_task_stats
-- One row per task active in the last hour, failing tasks first.
SELECT * FROM pgqueue.task_stats;

-- name: observe_workers
-- Every registered worker, alive first, with what it runs now.
SELECT * FROM pgqueue.workers_overview;

-- name: observe_stuck_jobs
-- Running jobs held by missing or dead workers or past their timeout, oldest first.
SELECT * FROM pgqueue.stuck_jobs;

-- name: observe_health
-- One row: counts by state, vacuum statistics, NOTIFY queue usage.
SELECT * FROM pgqueue.health;

-- name: metrics_live_jobs
-- Queued and running jobs per queue, read through the partial indexes of those states only:
-- cheap at every scrape however many finished rows the table holds.
SELECT queue, state::text AS state, count(*) AS jobs,
       count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS due,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'queued' AND run_at <= now()))::float8
           AS oldest_waiting_seconds
FROM pgqueue.jobs
WHERE state IN ('queued', 'running')
GROUP BY queue, state;

-- name: metrics_overview
-- Live workers (by the scraping worker's own heartbeat timeout), paused queues, NOTIFY usage.
SELECT (SELECT count(*) FROM pgqueue.workers
        WHERE last_heartbeat_at >= now() - make_interval(secs => %(heartbeat_timeout)s))
           AS live_workers,
       coalesce((SELECT array_agg(queue ORDER BY queue) FROM pgqueue.paused_queues), '{}')
           AS paused_queues,
       pg_notification_queue_usage()::float8 AS notification_queue_usage;
