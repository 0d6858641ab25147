-- The runtime queries of the Django integration (the admin's pages and actions, and the
-- django-background-tasks drop-in), one named block each, as in pgqueue/sql/queries.sql.
-- Loaded by pgqueue/contrib/django/queries.py; they run on Django's connection.

-- ==== admin ====

-- name: retry_jobs
-- The admin's bulk retry: every selected finished job queued again now with a fresh attempt
-- budget, in one statement and one NOTIFY. A job whose unique key an unfinished job holds now
-- is left alone (queuing it would break jobs_unique_key_idx and fail the whole statement), and
-- of several selected jobs sharing a key only the newest is queued. A job of a lock goes back
-- in its line (waiting behind an unfinished job of it: migration 0022).
WITH retried AS (
    UPDATE pgqueue.jobs AS j
    SET state = CASE WHEN j.lock IS NULL THEN 'queued'
                     ELSE pgqueue.lock_line_state(j.lock, j.id) END,
        run_at = now(), attempts = 0, finished_at = NULL, worker_id = NULL,
        claim_token = NULL, abort_requested = false
    WHERE j.id = ANY(%(ids)s::bigint[]) AND j.state IN ('failed', 'cancelled', 'succeeded')
      AND NOT (j.unique_key IS NOT NULL AND EXISTS (
          SELECT 1 FROM pgqueue.jobs AS holder
          WHERE holder.unique_key = j.unique_key
            AND holder.state NOT IN ('succeeded', 'failed', 'cancelled')))
      AND NOT (j.unique_key IS NOT NULL AND EXISTS (  -- two selected with one key: the newest
          SELECT 1 FROM pgqueue.jobs AS twin
          WHERE twin.id = ANY(%(ids)s::bigint[]) AND twin.id > j.id
            AND twin.unique_key = j.unique_key
            AND twin.state IN ('failed', 'cancelled', 'succeeded')))
    RETURNING j.id
), wake AS (
    SELECT pg_notify('pgqueue_jobs', '') WHERE EXISTS (SELECT 1 FROM retried)
)
SELECT id FROM retried LEFT JOIN wake ON true;

-- name: cancel_jobs
-- The admin's bulk cancel in one statement: queued, waiting and blocked jobs end cancelled now
-- (a cancelled job's dependents are cancelled by 0018's trigger, in this statement), running
-- ones get an abort request, and each worker holding one is told once (pgqueue_abort).
WITH cancelled AS (
    UPDATE pgqueue.jobs
    SET state = CASE WHEN state IN ('queued', 'waiting', 'blocked') THEN 'cancelled'
                     ELSE state END::pgqueue.job_state,
        finished_at = CASE WHEN state IN ('queued', 'waiting', 'blocked') THEN now()
                           ELSE finished_at END,
        abort_requested = (state = 'running')
    WHERE id = ANY(%(ids)s::bigint[]) AND state IN ('queued', 'waiting', 'blocked', 'running')
    RETURNING id, state::text AS state, worker_id
), told AS (
    SELECT pg_notify('pgqueue_abort', w.worker_id::text)
    FROM (SELECT DISTINCT worker_id FROM cancelled WHERE worker_id IS NOT NULL) AS w
)
SELECT id, state FROM cancelled LEFT JOIN (SELECT count(*) FROM told) AS sent ON true;

-- name: job_relatives
-- The job page's parents and dependents (pgqueue.job_dependencies, migration 0018), at most
-- %(limit)s of each with how many there are: a chord's callback may have thousands of parents.
-- Parents by the child index, dependents by the primary key (parent_id, child_id); a parent
-- pruned since has no row left (state NULL).
(SELECT 'parent' AS relation, d.parent_id AS id, j.task_name, j.state::text AS state,
        count(*) OVER () AS total
 FROM pgqueue.job_dependencies AS d LEFT JOIN pgqueue.jobs AS j ON j.id = d.parent_id
 WHERE d.child_id = %(id)s ORDER BY d.parent_id LIMIT %(limit)s)
UNION ALL
(SELECT 'dependent', d.child_id, j.task_name, j.state::text, count(*) OVER ()
 FROM pgqueue.job_dependencies AS d LEFT JOIN pgqueue.jobs AS j ON j.id = d.child_id
 WHERE d.parent_id = %(id)s ORDER BY d.child_id LIMIT %(limit)s);

-- name: workflow_counts
-- The admin's workflow banner: a workflow's jobs by state, and whether any has made an attempt
-- (pending or running), by jobs_workflow_idx.
SELECT state::text AS state, count(*) AS jobs, bool_or(attempts > 0) AS started
FROM pgqueue.jobs WHERE workflow_id = %(workflow_id)s::uuid GROUP BY state;

-- name: pause_queues
-- The admin's bulk pause: pgqueue.pause_queue() for each selected queue, in one statement.
SELECT count(*) FILTER (WHERE pgqueue.pause_queue(q)) AS changed
FROM unnest(%(queues)s::text[]) AS q;

-- name: resume_queues
-- The admin's bulk resume: pgqueue.resume_queue() (which wakes the workers) for each one.
SELECT count(*) FILTER (WHERE pgqueue.resume_queue(q)) AS changed
FROM unnest(%(queues)s::text[]) AS q;

-- name: pause_schedules
-- The admin's bulk pause of periodic schedules, through pgqueue.pause_schedule().
SELECT count(*) FILTER (WHERE pgqueue.pause_schedule(s)) AS changed
FROM unnest(%(ids)s::text[]) AS s;

-- name: resume_schedules
-- The admin's bulk resume, through pgqueue.resume_schedule() (ticks missed while paused are
-- not run).
SELECT count(*) FILTER (WHERE pgqueue.resume_schedule(s)) AS changed
FROM unnest(%(ids)s::text[]) AS s;

-- name: run_schedules_now
-- The admin's "run now": one job per selected schedule (its task, arguments, queue, priority
-- and attempts), due now, outside its ticks (the tick ledger and next_tick_at are untouched);
-- one INSERT, so one NOTIFY.
INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, max_attempts)
SELECT task_name, queue, args, kwargs, priority, max_attempts
FROM pgqueue.schedules WHERE id = ANY(%(ids)s::text[])
RETURNING id;

-- ==== django-background-tasks ====

-- name: lock_background_task
-- Task.lock(locked_by): a queued task of the door, or one whose lock is older than
-- MAX_RUN_TIME, becomes running under this name (the library's lock, as a claim: workers then
-- leave it alone). Two processes locking one task: the second one's UPDATE waits for the
-- first, re-reads the row, finds it freshly locked and locks nothing.
WITH locked AS (
    UPDATE pgqueue.jobs AS j
    SET state = 'running', started_at = now(), claim_token = gen_random_uuid(),
        worker_id = NULL, abort_requested = false
    WHERE j.id = %(id)s
      AND (j.state = 'queued'
           OR (j.state = 'running'
               AND j.started_at < now() - make_interval(secs => %(max_run_time)s)))
      AND EXISTS (SELECT 1 FROM pgqueue_background_task_meta AS m WHERE m.job_id = j.id)
    RETURNING j.id
)
UPDATE pgqueue_background_task_meta AS m SET locked_by = %(locked_by)s
FROM locked WHERE m.job_id = locked.id
RETURNING m.job_id AS id;

-- name: start_background_attempt
-- tasks.run_task(): an attempt starts in this process, on a task it locked (Task.lock) or a
-- queued one; the attempt is counted and a new claim token fences its outcome, which is
-- recorded by the engine's own acknowledgements (mark_succeeded, retry_later, mark_failed).
WITH started AS (
    UPDATE pgqueue.jobs AS j
    SET state = 'running', attempts = j.attempts + 1, claim_token = gen_random_uuid(),
        started_at = CASE WHEN j.state = 'running' THEN j.started_at ELSE now() END,
        worker_id = NULL, abort_requested = false
    FROM pgqueue_background_task_meta AS m
    WHERE j.id = %(id)s AND m.job_id = j.id
      AND (j.state = 'queued'
           OR (j.state = 'running' AND j.worker_id IS NULL AND m.locked_by = %(locked_by)s))
    RETURNING j.id, j.attempts, j.max_attempts, j.claim_token
), named AS (
    UPDATE pgqueue_background_task_meta AS m SET locked_by = %(locked_by)s
    FROM started WHERE m.job_id = started.id
)
SELECT id, attempts, max_attempts, claim_token FROM started;
