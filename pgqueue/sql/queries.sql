-- Every runtime query of pgqueue, one named block each: "-- name: <query_name>" followed by a
-- one-line comment saying why the query is shaped as it is. Loaded by pgqueue/queries.py.

-- name: insert_job
-- Enqueue one job; the statement trigger sends the wake-up NOTIFY (and, with a lock, a row
-- trigger makes it wait behind the lock's unfinished jobs: migration 0009).
INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts,
                          timeout_seconds, lock, concurrency_key)
VALUES (%(task_name)s, %(queue)s, %(args)s, %(kwargs)s, %(priority)s,
        coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(max_attempts)s,
        %(timeout_seconds)s, %(lock)s, %(concurrency_key)s)
RETURNING id;

-- name: insert_dependent_job
-- Enqueue a job that runs after its parents: one call to pgqueue.enqueue_after (migration
-- 0018), which locks the parents, refuses unknown ids and writes the job and its edges at once.
SELECT pgqueue.enqueue_after(
    %(parent_ids)s::bigint[], %(on_parent_failure)s, %(task_name)s, %(queue)s, %(args)s::jsonb,
    %(kwargs)s::jsonb, %(priority)s,
    coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(max_attempts)s,
    %(timeout_seconds)s, %(unique_key)s, %(concurrency_key)s) AS id;

-- name: insert_unique_job
-- Enqueue a job unless one holding its unique key is queued or running; returns (id, created).
-- ON CONFLICT on jobs_unique_key_idx decides (two producers cannot both insert); the second
-- branch reads the holder, and is empty if that job finished meanwhile or committed after this
-- statement's snapshot began: the caller then runs the statement again.
WITH inserted AS (
    INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts,
                              timeout_seconds, unique_key, lock, concurrency_key)
    VALUES (%(task_name)s, %(queue)s, %(args)s, %(kwargs)s, %(priority)s,
            coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(max_attempts)s,
            %(timeout_seconds)s, %(unique_key)s, %(lock)s, %(concurrency_key)s)
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled')
    DO NOTHING
    RETURNING id
)
SELECT id, true AS created FROM inserted
UNION ALL
SELECT id, false FROM pgqueue.jobs
WHERE unique_key = %(unique_key)s AND state NOT IN ('succeeded', 'failed', 'cancelled')
  AND NOT EXISTS (SELECT 1 FROM inserted);

-- name: insert_unique_jobs_many
-- defer_many with a unique key per job, in one statement (one NOTIFY): the id of each job, new
-- or the one already holding its key (NULL if that holder finished meanwhile: asked again).
-- Two items with one key get the same job.
WITH wanted AS (
    SELECT a.args, a.kwargs, a.unique_key, a.position
    FROM unnest(%(args)s::jsonb[], %(kwargs)s::jsonb[], %(unique_keys)s::text[])
         WITH ORDINALITY AS a(args, kwargs, unique_key, position)
), inserted AS (
    INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts,
                              timeout_seconds, unique_key, lock, concurrency_key)
    SELECT %(task_name)s, %(queue)s, w.args, w.kwargs, %(priority)s,
           coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(max_attempts)s,
           %(timeout_seconds)s, w.unique_key, %(lock)s, %(concurrency_key)s
    FROM wanted AS w ORDER BY w.position
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled')
    DO NOTHING
    RETURNING id, unique_key
)
SELECT coalesce(i.id, held.id) AS id
FROM wanted AS w
LEFT JOIN inserted AS i ON i.unique_key = w.unique_key
LEFT JOIN pgqueue.jobs AS held
       ON i.id IS NULL AND held.unique_key = w.unique_key
      AND held.state NOT IN ('succeeded', 'failed', 'cancelled')
ORDER BY w.position;

-- name: insert_jobs_many
-- Bulk enqueue in one statement (so one NOTIFY); arrays are unnested row by row.
INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts,
                          timeout_seconds, lock, concurrency_key)
SELECT %(task_name)s, %(queue)s, a.args, a.kwargs, %(priority)s,
       coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(max_attempts)s,
       %(timeout_seconds)s, %(lock)s, %(concurrency_key)s
FROM unnest(%(args)s::jsonb[], %(kwargs)s::jsonb[]) AS a(args, kwargs)
RETURNING id;

-- name: reserve_job_ids
-- Bulk enqueue by COPY (which returns nothing): reserve the ids, and take run_at from the
-- database clock, in one round trip first. Consecutive ids (the rule unless another session
-- took some meanwhile) go back as the first one alone: 50,000 ids cost more to send and decode
-- than to reserve.
SELECT ids[1] AS first_id,
       CASE WHEN ids[%(count)s::int] - ids[1] = %(count)s::int - 1 THEN NULL ELSE ids END AS ids,
       coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)) AS run_at
FROM (SELECT array_agg(nextval('pgqueue.jobs_id_seq'::regclass)) AS ids
      FROM generate_series(1, %(count)s::int)) AS reserved;

-- name: copy_jobs
-- The rows themselves: COPY is several times faster than INSERT for thousands of rows, and
-- the statement trigger still sends one NOTIFY for the whole batch.
COPY pgqueue.jobs (id, task_name, queue, args, kwargs, priority, run_at, max_attempts,
                   timeout_seconds) FROM STDIN;

-- name: copy_jobs_due_now
-- As copy_jobs for jobs due now: run_at is left to its default, now(), because parsing a
-- timestamptz per row is a large share of the server's work in a bulk COPY.
COPY pgqueue.jobs (id, task_name, queue, args, kwargs, priority, max_attempts,
                   timeout_seconds) FROM STDIN;

-- name: claim_jobs
-- Claim up to %(limit)s due jobs in claim order, from the worker's queues (NULL: every queue).
-- Only jobs of the worker's tasks (%(tasks)s; NULL: any task, migration 0015), so a worker never
-- spends an attempt on a job it cannot run.
-- The rows are chosen and locked by pgqueue.claimable_job_ids (migration 0007), whose plan is
-- an ordered index walk that stops after the batch whatever the statistics say; here the ids
-- are one primary-key index scan (the sub-select runs once, so `id = ANY(...)` is an index
-- condition; with the worker's planner settings no cached plan can fall back to a table scan).
-- The claim commits without waiting for the WAL flush (a claim lost in a crash only returns its
-- job to queued): set_config(..., true) scopes that to this statement's own transaction, so it
-- never leaks to the session (nor, behind a transaction-mode pooler, to another client's).
-- started_at: when a rate limit counted these starts, the instant its window recorded them
-- (migration 0022: taken after the queue's row lock, so stamps follow the order in which claims
-- hold it; now(), the transaction's start, could precede a window another claim had already
-- judged); now() otherwise. A sub-select, read once, after the ids (initplans run when first
-- needed).
-- Every returned value must decode whatever a producer wrote: arguments come back as text (the
-- worker decodes each job's alone, see store._claimed_job) and times are clamped to what a
-- Python datetime holds ('-infinity' is a valid run_at to Postgres, not to Python).
UPDATE pgqueue.jobs AS j
SET state = 'running', attempts = j.attempts + 1, worker_id = %(worker_id)s,
    claim_token = gen_random_uuid(), abort_requested = false,
    started_at = (SELECT coalesce(nullif(current_setting('pgqueue.claim_started_at', true), '')
                                  ::timestamptz, now()))
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS fast_commit
WHERE j.id = ANY((SELECT pgqueue.claimable_job_ids(%(limit)s, %(queues)s::text[],
                                                  %(tasks)s::text[]))::bigint[])
RETURNING j.id, j.task_name, j.queue, j.args::text, j.kwargs::text, j.priority, j.attempts,
          j.max_attempts, j.claim_token,
          least(greatest(j.enqueued_at, '0001-01-02Z'), '9999-12-30Z') AS enqueued_at,
          least(greatest(j.run_at, '0001-01-02Z'), '9999-12-30Z') AS run_at, j.timeout_seconds;

-- name: bound_transaction
-- First statement of a worker's explicit transaction behind a transaction-mode pooler, where
-- session settings cannot be sent at connection start: the same bounds, scoped to this
-- transaction (a frozen worker's open transaction is ended by the server, a lock wait fails).
SELECT set_config('idle_in_transaction_session_timeout', %(idle_in_transaction)s, true),
       set_config('lock_timeout', %(lock)s, true),
       set_config('statement_timeout', %(statement)s, true);

-- name: seconds_until_next_job
-- How long an idle worker may sleep before a scheduled job becomes due: NULL when none is
-- queued (greatest() would turn that NULL into 0, "due now", and the claim loop would spin),
-- negative when one is overdue, Infinity for run_at = 'infinity' (epochs, not an interval: the
-- difference of an infinite timestamp and now() is an error). Jobs of tasks the worker lacks
-- do not count: the claim skips them, and counting them would wake it to claim nothing.
-- A due job first (0: the claim took nothing, yet jobs are due: a limit or another session holds
-- them): that walk stops at the first one, where min(run_at) read every queued row and called
-- queue_is_paused for each (882,655 calls, 62 % of the database's time, draining 3,000 jobs
-- under a binding concurrency limit: benchmarks/flow_experiments.py functions).
-- rate_reopens_in, only when jobs are due: if a rate limit holds due jobs of these queues, how
-- long until its window lets the next one start (the ring's slot rate_next holds the oldest of
-- the last rate_limit starts once the ring is full; it leaves the window at that instant +
-- rate_period); NULL when none does (a concurrency limit or a row lock holds them). In the same
-- round trip, for a worker held back by a limit asks this after every claim that came up short
-- (and `--one-shot` before it exits). Every part stops at its first row whatever the backlog: each queue's due job is a
-- LATERAL ... LIMIT 1 probe (as an EXISTS, the planner made it a semi-join that grouped every
-- due job of the backlog, each time a held-back worker asked), and the worker's sessions price
-- bitmap scans out (one reads every matching index entry before its first row).
WITH due AS (
    SELECT EXISTS (
        SELECT 1 FROM pgqueue.jobs
        WHERE state = 'queued' AND run_at <= now()
          AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
          AND (%(tasks)s::text[] IS NULL OR task_name = ANY(%(tasks)s::text[]))
          AND NOT pgqueue.queue_is_paused(queue)) AS now)
SELECT CASE WHEN due.now THEN 0::float8
       ELSE (SELECT (extract(epoch FROM min(run_at)) - extract(epoch FROM now()))::float8
             FROM pgqueue.jobs
             WHERE state = 'queued'
               AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
               AND (%(tasks)s::text[] IS NULL OR task_name = ANY(%(tasks)s::text[]))
               AND NOT pgqueue.queue_is_paused(queue)) END AS seconds,
       CASE WHEN due.now THEN (
           SELECT min(extract(epoch FROM oldest.started_at + l.rate_period)
                      - extract(epoch FROM now()))::float8
           FROM pgqueue.queue_limits AS l
           CROSS JOIN LATERAL (SELECT r.started_at FROM pgqueue.queue_rate_starts AS r
                               WHERE r.queue = l.queue AND r.slot = l.rate_next
                               LIMIT 1) AS oldest
           CROSS JOIN LATERAL (SELECT 1 FROM pgqueue.jobs AS j
                               WHERE j.state = 'queued' AND j.queue = l.queue
                                 AND j.run_at <= now()
                               LIMIT 1) AS due_here
           WHERE l.rate_limit IS NOT NULL AND oldest.started_at > now() - l.rate_period
             AND (%(queues)s::text[] IS NULL OR l.queue = ANY(%(queues)s::text[]))
             AND NOT pgqueue.queue_is_paused(l.queue)) END AS rate_reopens_in
FROM due;

-- name: mark_succeeded
-- Batch acknowledgement: one statement for many jobs; the claim token fences out lost claims.
-- Every acknowledgement commits durably whatever the server's default (set_config local to the
-- statement's transaction: the outcome is the one write a crash must not lose).
-- Every acknowledgement compares state::text, not state: the running-jobs partial index then
-- cannot be picked, whose estimate (often 1 row) led the generic plan to rescan the unnest for
-- each running row (quadratic: 8.6 s for 7,000 jobs); this way each id is one primary key probe.
-- No join: `j.id = ANY(ids)` is the primary-key index condition (the batch's rows, whatever a
-- cached generic plan thinks the table holds) and `claim_token = ANY(tokens)` the fence (tokens
-- are random per claim, so a stale worker's token never matches another job's). Joined to the
-- unnest of the batch, the generic plan rescanned the unnest for every row: 639,200 rows
-- discarded for 800 jobs (benchmarks/flow_experiments.py lockstep). Each job's result is picked
-- by its position in the batch.
UPDATE pgqueue.jobs AS j
SET state = 'succeeded', finished_at = now(), worker_id = NULL,
    result = (%(results)s::jsonb[])[array_position(%(ids)s::bigint[], j.id)]
FROM (SELECT set_config('synchronous_commit', 'on', true)) AS durable
WHERE j.id = ANY(%(ids)s::bigint[]) AND j.claim_token = ANY(%(tokens)s::uuid[])
  AND j.state::text = 'running'
RETURNING j.id;

-- name: mark_succeeded_returning_none
-- As mark_succeeded for a batch whose tasks all returned None (stored as JSON null, as there).
UPDATE pgqueue.jobs AS j
SET state = 'succeeded', finished_at = now(), result = 'null'::jsonb, worker_id = NULL
FROM (SELECT set_config('synchronous_commit', 'on', true)) AS durable
WHERE j.id = ANY(%(ids)s::bigint[]) AND j.claim_token = ANY(%(tokens)s::uuid[])
  AND j.state::text = 'running'
RETURNING j.id;

-- name: delete_finished
-- --delete-jobs: drop the row instead of recording the outcome (still fenced by the token).
-- Not a row something still reads: a parent's row carries its result to its dependents and its
-- end to their release (deleted, it would count as failed), a watched row is read by a waiter.
-- Those stay running here and are recorded by the outcome's own query next, in this transaction.
DELETE FROM pgqueue.jobs AS j
USING (SELECT set_config('synchronous_commit', 'on', true)) AS durable
WHERE j.id = ANY(%(ids)s::bigint[]) AND j.claim_token = ANY(%(tokens)s::uuid[])
  AND j.state::text = 'running' AND NOT j.has_dependents AND NOT j.watched
RETURNING j.id;

-- name: mark_failed
-- Final failure: the error is kept for the operator, and appended to the attempts' history.
UPDATE pgqueue.jobs AS j
SET state = 'failed', finished_at = now(), worker_id = NULL,
    error_type = o.error_type, error_message = o.error_message, error_traceback = o.traceback,
    errors = pgqueue.with_attempt_error(j.errors, j.attempts, j.worker_id, o.error_type,
                                        o.error_message, o.traceback)
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(error_types)s::text[],
            %(error_messages)s::text[], %(tracebacks)s::text[])
     AS o(id, token, error_type, error_message, traceback),
     (SELECT set_config('synchronous_commit', 'on', true)) AS durable
WHERE j.id = o.id AND j.claim_token = o.token AND j.state::text = 'running'
  AND j.id = ANY(%(ids)s::bigint[])
RETURNING j.id;

-- name: mark_cancelled
-- A running job whose abort was requested ends cancelled.
UPDATE pgqueue.jobs AS j
SET state = 'cancelled', finished_at = now(), worker_id = NULL
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS o(id, token),
     (SELECT set_config('synchronous_commit', 'on', true)) AS durable
WHERE j.id = o.id AND j.claim_token = o.token AND j.state::text = 'running'
  AND j.id = ANY(%(ids)s::bigint[])
RETURNING j.id;

-- name: retry_later
-- Back to queued after a failed attempt (or pgqueue.Retry, which refunds the attempt).
UPDATE pgqueue.jobs AS j
SET state = 'queued', worker_id = NULL, claim_token = NULL,
    run_at = now() + make_interval(secs => o.delay), attempts = j.attempts - o.refund,
    error_type = o.error_type, error_message = o.error_message, error_traceback = o.traceback,
    errors = pgqueue.with_attempt_error(j.errors, j.attempts, j.worker_id, o.error_type,
                                        o.error_message, o.traceback)
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(delays)s::float8[], %(refunds)s::int[],
            %(error_types)s::text[], %(error_messages)s::text[], %(tracebacks)s::text[])
     AS o(id, token, delay, refund, error_type, error_message, traceback),
     (SELECT set_config('synchronous_commit', 'on', true)) AS durable
WHERE j.id = o.id AND j.claim_token = o.token AND j.state::text = 'running'
  AND j.id = ANY(%(ids)s::bigint[])
RETURNING j.id;

-- name: release_jobs
-- Shutdown: give back jobs that did not start or could not finish, without spending an attempt.
WITH released AS (
    UPDATE pgqueue.jobs AS j
    SET state = 'queued', worker_id = NULL, claim_token = NULL, attempts = j.attempts - 1
    FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS o(id, token),
         (SELECT set_config('synchronous_commit', 'on', true)) AS durable
    WHERE j.id = o.id AND j.claim_token = o.token AND j.state::text = 'running'
      AND j.id = ANY(%(ids)s::bigint[])
    RETURNING j.id
)
SELECT id FROM released, LATERAL (SELECT pg_notify('pgqueue_jobs', '')) AS wake;

-- name: set_progress
-- Progress and meta of running jobs (pgqueue.worker.progress): one statement per progress
-- interval for every job of a worker that reported since, and one in the acknowledgement's
-- transaction, before the outcome. Fenced like an acknowledgement: a worker whose job was
-- rescued writes nothing. A NULL progress keeps the row's progress and message (only meta was
-- reported); meta keys merge into the row's. Without a durable commit (a lost report is
-- replaced by the next one); in the acknowledgement's transaction the outcome's query makes
-- the commit durable after it. No index covers these columns: the update is HOT.
UPDATE pgqueue.jobs AS j
SET progress = coalesce(o.progress, j.progress),
    progress_message = CASE WHEN o.progress IS NULL THEN j.progress_message ELSE o.message END,
    meta = CASE WHEN o.meta IS NULL THEN j.meta ELSE coalesce(j.meta, '{}'::jsonb) || o.meta END,
    progress_at = now()
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(progress)s::float8[],
            %(messages)s::text[], %(metas)s::jsonb[]) AS o(id, token, progress, message, meta),
     (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
WHERE j.id = o.id AND j.claim_token = o.token AND j.state::text = 'running'
  AND j.id = ANY(%(ids)s::bigint[])
RETURNING j.id;

-- name: rescue_stalled_jobs
-- Jobs held by a worker whose heartbeat is older than the timeout go back to queued (or to
-- failed when out of attempts). SKIP LOCKED: a row another session holds (a completion racing
-- this, or a frozen worker inside its acknowledgement transaction) is left for a later pass,
-- never waited on; the re-checked WHERE skips a job that just finished.
WITH live_workers AS (
    SELECT id FROM pgqueue.workers
    WHERE last_heartbeat_at > now() - make_interval(secs => %(heartbeat_timeout)s)
), stalled AS (
    SELECT id FROM pgqueue.jobs
    WHERE state = 'running'
      AND (worker_id IS NULL OR worker_id NOT IN (SELECT id FROM live_workers))
    FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE pgqueue.jobs AS j
    SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END::pgqueue.job_state,
        finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
        worker_id = NULL, claim_token = NULL,
        error_type = 'WorkerLost',
        error_message = format('worker %%s stopped heartbeating while running attempt %%s',
                               coalesce(j.worker_id::text, '?'), j.attempts),
        error_traceback = NULL,
        errors = pgqueue.with_attempt_error(
            j.errors, j.attempts, j.worker_id, 'WorkerLost',
            format('worker %%s stopped heartbeating while running attempt %%s',
                   coalesce(j.worker_id::text, '?'), j.attempts), NULL)
    FROM stalled
    WHERE j.id = stalled.id
    RETURNING j.id, j.state
)
SELECT id, state::text FROM rescued, LATERAL (SELECT pg_notify('pgqueue_jobs', '')) AS wake;

-- name: mark_worker_dead
-- A supervisor saw its child process die: its jobs need not wait for the heartbeat timeout.
UPDATE pgqueue.workers SET last_heartbeat_at = '-infinity'
WHERE hostname = %(hostname)s AND pid = %(pid)s
RETURNING id;

-- name: delete_dead_workers
-- Forget workers that stopped heartbeating long ago (their jobs were rescued first); one held
-- by another session is left for a later pass (SKIP LOCKED), never waited on.
DELETE FROM pgqueue.workers
WHERE id IN (SELECT id FROM pgqueue.workers
             WHERE last_heartbeat_at < now() - make_interval(secs => %(heartbeat_timeout)s) * 10
             FOR UPDATE SKIP LOCKED)
RETURNING id;

-- name: register_worker
-- application_name: the stem its connections' names start with (workers_overview counts them).
-- tasks: the task names it claims (NULL: any), read by pgqueue.unserved_jobs.
INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, application_name, tasks,
                             pool)
VALUES (%(name)s, %(hostname)s, %(pid)s, %(queues)s, %(concurrency)s, %(application_name)s,
        %(tasks)s, %(pool)s)
RETURNING id;

-- name: heartbeat
-- Proves the worker alive and returns its running jobs whose abort was requested (so a cancel
-- takes effect even if a notification was missed). Records its child processes as they are
-- now (NULL: none; pgqueue.worker_children shows them), so they are at most one heartbeat old.
WITH beat AS (
    UPDATE pgqueue.workers SET last_heartbeat_at = now(), children = %(children)s::jsonb
    WHERE id = %(worker_id)s
    RETURNING id
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
       error_type, error_message, error_traceback, result, errors, progress, progress_message,
       progress_at, meta
FROM pgqueue.jobs WHERE id = %(id)s;

-- name: get_job_detail
-- Every column of one job, whatever later migrations add (to_jsonb of the row: `pgqueue job`
-- shows new columns without a change here), and the worker holding it, if any is registered.
SELECT to_jsonb(j) AS job, w.name AS worker_name, w.hostname AS worker_hostname,
       w.pid AS worker_pid
FROM pgqueue.jobs AS j
LEFT JOIN pgqueue.workers AS w ON w.id = j.worker_id
WHERE j.id = %(id)s;

-- name: list_jobs
-- Newest first; every filter is optional.
SELECT id, task_name, queue, args, kwargs, priority, state::text, run_at, attempts, max_attempts,
       worker_id, claim_token, abort_requested, enqueued_at, started_at, finished_at,
       error_type, error_message, error_traceback, result, errors, progress, progress_message,
       progress_at, meta
FROM pgqueue.jobs
WHERE (%(state)s::pgqueue.job_state IS NULL OR state = %(state)s::pgqueue.job_state)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(task_name)s::text IS NULL OR task_name = %(task_name)s::text)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: retry_job
-- Operator retry of a finished job: queued again now, with a fresh attempt budget.
-- A job of a lock goes back in its line (waiting behind an unfinished job of it: migration 0022).
WITH retried AS (
    UPDATE pgqueue.jobs
    SET state = CASE WHEN lock IS NULL THEN 'queued'
                     ELSE pgqueue.lock_line_state(lock, id) END,
        run_at = now(), attempts = 0, finished_at = NULL, worker_id = NULL,
        claim_token = NULL, abort_requested = false
    WHERE id = %(id)s AND state IN ('failed', 'cancelled', 'succeeded')
    RETURNING id
)
SELECT id FROM retried, LATERAL (SELECT pg_notify('pgqueue_jobs', '')) AS wake;

-- name: cancel_job
-- A queued, waiting or blocked job is cancelled at once (a blocked one's own dependents with
-- it, by the trigger of migration 0018); a running one gets an abort request its worker acts on
-- (told by NOTIFY now, or by its next heartbeat if the notification is missed).
WITH cancelled AS (
    UPDATE pgqueue.jobs
    SET state = CASE WHEN state IN ('queued', 'waiting', 'blocked') THEN 'cancelled'
                     ELSE state END::pgqueue.job_state,
        finished_at = CASE WHEN state IN ('queued', 'waiting', 'blocked') THEN now()
                           ELSE finished_at END,
        abort_requested = (state = 'running')
    WHERE id = %(id)s AND state IN ('queued', 'waiting', 'blocked', 'running')
    RETURNING id, state::text AS state, worker_id
)
SELECT cancelled.state FROM cancelled
LEFT JOIN LATERAL (SELECT pg_notify('pgqueue_abort', cancelled.worker_id::text)
                   WHERE cancelled.worker_id IS NOT NULL) AS wake ON true;

-- name: queue_stats
-- Per queue: depth by state, the age of the oldest due job still waiting, and its flow: jobs
-- waiting on a lock, its limits against what runs, and what holds due jobs back (the view of
-- migrations_sql/0016_flow_in_stats.sql).
SELECT queue, queued, running, succeeded, failed, cancelled, oldest_waiting_seconds, paused,
       waiting_on_lock, concurrency, per_key_concurrency, rate_limit, started_in_rate_window,
       held_back_by
FROM pgqueue.queue_stats
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

-- name: observe_worker_children
-- One row per child process of a process-pool worker: its job, task and memory.
SELECT * FROM pgqueue.worker_children;

-- name: observe_running_jobs
-- The oldest running attempts with their reported progress (`pgqueue top`); the view reads the
-- running jobs' partial index, and only the first rows are fetched.
SELECT * FROM pgqueue.running_jobs LIMIT %(limit)s;

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

-- ==== periodic ====
-- Schedules declared in code (pgqueue/periodic). Exactly once per (schedule, tick): the
-- scheduler that holds the schedule's row lock records the tick in schedule_ticks (primary key
-- (schedule_id, tick_at)) and inserts its job in the same statement; now() is the only clock.

-- name: lock_schedules_for_reconcile
-- One reconciliation at a time (workers often start together); this transaction's now() is the
-- instant new schedules take their first tick after.
SELECT now() AS now FROM (SELECT pg_advisory_xact_lock(hashtext('pgqueue.schedules'))) AS locked;

-- name: upsert_schedule
-- Write a schedule's definition from code. The next tick is kept (so ticks missed across a
-- restart are seen) unless the timing changed or the schedule comes back from orphaned (or from
-- being a runtime schedule), when it restarts from the first tick after now. paused belongs to
-- operators and is never touched.
INSERT INTO pgqueue.schedules AS s
    (id, task_name, cron, every, timezone, args, kwargs, queue, priority, max_attempts, misfire,
     misfire_grace, misfire_window, overlap, next_tick_at)
VALUES (%(id)s, %(task_name)s, %(cron)s, %(every)s, %(timezone)s, %(args)s, %(kwargs)s,
        %(queue)s, %(priority)s, %(max_attempts)s, %(misfire)s, %(misfire_grace)s,
        %(misfire_window)s, %(overlap)s, %(next_tick_at)s)
ON CONFLICT (id) DO UPDATE SET
    task_name = excluded.task_name, cron = excluded.cron, every = excluded.every,
    timezone = excluded.timezone, args = excluded.args, kwargs = excluded.kwargs,
    queue = excluded.queue, priority = excluded.priority, max_attempts = excluded.max_attempts,
    misfire = excluded.misfire, misfire_grace = excluded.misfire_grace,
    misfire_window = excluded.misfire_window, overlap = excluded.overlap,
    next_tick_at = CASE WHEN s.orphaned OR s.origin <> 'code'
                             OR s.cron IS DISTINCT FROM excluded.cron
                             OR s.every IS DISTINCT FROM excluded.every
                             OR s.anchor_at IS NOT NULL OR s.timezone <> excluded.timezone
                        THEN excluded.next_tick_at ELSE s.next_tick_at END,
    restart_from = CASE WHEN s.orphaned OR s.origin <> 'code'
                             OR s.cron IS DISTINCT FROM excluded.cron
                             OR s.every IS DISTINCT FROM excluded.every
                             OR s.anchor_at IS NOT NULL OR s.timezone <> excluded.timezone
                        THEN NULL ELSE s.restart_from END,
    origin = 'code', anchor_at = NULL, ends_at = NULL,
    orphaned = false, orphaned_at = NULL, last_seen_at = now()
RETURNING id, next_tick_at;

-- name: orphan_undeclared_schedules
-- Schedules no longer in code stop firing and stay visible (a DBA deletes the row to forget).
-- Runtime schedules were never in code: they are not touched.
UPDATE pgqueue.schedules
SET orphaned = true, orphaned_at = now()
WHERE origin = 'code' AND NOT orphaned AND NOT (id = ANY(%(declared)s::text[]))
RETURNING id;

-- name: save_runtime_schedule
-- A schedule created by a program (not declared in code): written whole, and restarted from
-- anchor_at (or now): the next scheduler pass computes its first tick from there.
INSERT INTO pgqueue.schedules AS s
    (id, task_name, cron, every, anchor_at, timezone, args, kwargs, queue, priority,
     max_attempts, misfire, misfire_grace, misfire_window, overlap, ends_at, origin,
     next_tick_at, restart_from)
VALUES (%(id)s, %(task_name)s, %(cron)s, %(every)s, %(anchor_at)s, %(timezone)s, %(args)s,
        %(kwargs)s, %(queue)s, %(priority)s, %(max_attempts)s, %(misfire)s, %(misfire_grace)s,
        %(misfire_window)s, %(overlap)s, %(ends_at)s, 'runtime', NULL,
        coalesce(%(anchor_at)s::timestamptz, now()))
ON CONFLICT (id) DO UPDATE SET
    task_name = excluded.task_name, cron = excluded.cron, every = excluded.every,
    anchor_at = excluded.anchor_at, timezone = excluded.timezone, args = excluded.args,
    kwargs = excluded.kwargs, queue = excluded.queue, priority = excluded.priority,
    max_attempts = excluded.max_attempts, misfire = excluded.misfire,
    misfire_grace = excluded.misfire_grace, misfire_window = excluded.misfire_window,
    overlap = excluded.overlap, ends_at = excluded.ends_at, origin = 'runtime', next_tick_at = NULL,
    restart_from = greatest(excluded.restart_from, s.last_tick_at + interval '1 microsecond'),
    orphaned = false, orphaned_at = NULL, last_seen_at = now()
RETURNING id;

-- name: delete_schedule
-- Forget a schedule (an orphan, or a runtime schedule); its tick ledger goes with it.
DELETE FROM pgqueue.schedules WHERE id = %(id)s RETURNING id;

-- name: due_schedule_ids
-- Live schedules whose next tick has come (NULL: just resumed, the next tick is recomputed).
SELECT id FROM pgqueue.schedules
WHERE NOT paused AND NOT orphaned AND (next_tick_at IS NULL OR next_tick_at <= now())
  AND (ends_at IS NULL OR next_tick_at IS NULL OR next_tick_at <= ends_at)
ORDER BY next_tick_at NULLS FIRST, id;

-- name: lock_due_schedule
-- One scheduler fires a schedule at a time; the others skip the locked row. The WHERE is
-- re-checked on the row as committed, so a schedule another scheduler just advanced is not due.
-- A scheduler stalled while holding the lock is cut off after 10 s, so the others take over.
-- previous_unfinished: overlap = false and the latest tick's job is still queued, waiting or
-- running (then this pass skips its ticks; migrations_sql/0012_schedule_overlap.sql).
SELECT s.id, s.cron, s.every, s.anchor_at, s.timezone, s.misfire, s.misfire_grace,
       s.misfire_window, s.ends_at, s.next_tick_at, s.restart_from, s.overlap, s.last_job_id,
       now() AS now,
       (NOT s.overlap AND EXISTS (
           SELECT FROM pgqueue.jobs AS j
           WHERE j.id = s.last_job_id AND j.state::text IN ('queued', 'waiting', 'running')
       )) AS previous_unfinished,
       set_config('idle_in_transaction_session_timeout', '10s', true) AS stall_guard
FROM pgqueue.schedules AS s
WHERE id = %(id)s AND NOT paused AND NOT orphaned
  AND (next_tick_at IS NULL OR next_tick_at <= now())
  AND (ends_at IS NULL OR next_tick_at IS NULL OR next_tick_at <= ends_at)
FOR UPDATE SKIP LOCKED;

-- name: fire_schedule_ticks
-- In the transaction holding the schedule's row lock: record the ticks (the primary key drops
-- any already recorded), enqueue one job per tick recorded (run_at = the tick) and advance the
-- schedule, in one statement. Job ids are drawn first so each tick row names its job.
WITH due AS (
    SELECT tick.at AS tick_at, nextval(pg_get_serial_sequence('pgqueue.jobs', 'id')) AS job_id
    FROM unnest(%(ticks)s::timestamptz[]) AS tick(at)
), recorded AS (
    INSERT INTO pgqueue.schedule_ticks (schedule_id, tick_at, job_id, worker_id)
    SELECT %(id)s::text, due.tick_at, due.job_id, %(worker_id)s::bigint FROM due
    ON CONFLICT (schedule_id, tick_at) DO NOTHING
    RETURNING tick_at, job_id
), enqueued AS (
    INSERT INTO pgqueue.jobs (id, task_name, queue, args, kwargs, priority, run_at, max_attempts)
    SELECT recorded.job_id, s.task_name, s.queue, s.args, s.kwargs, s.priority,
           recorded.tick_at, s.max_attempts
    FROM recorded JOIN pgqueue.schedules AS s ON s.id = %(id)s
    RETURNING id
), latest AS (
    SELECT tick_at, job_id FROM recorded ORDER BY tick_at DESC LIMIT 1
), advanced AS (
    UPDATE pgqueue.schedules AS s
    SET next_tick_at = %(next_tick_at)s, restart_from = NULL,
        skipped_ticks = s.skipped_ticks + %(skipped)s,
        overlap_skipped_ticks = s.overlap_skipped_ticks + %(overlap_skipped)s,
        last_tick_at = coalesce((SELECT tick_at FROM latest), s.last_tick_at),
        last_job_id = coalesce((SELECT job_id FROM latest), s.last_job_id),
        last_fired_at = CASE WHEN EXISTS (SELECT FROM latest) THEN now() ELSE s.last_fired_at END,
        last_fired_by = CASE WHEN EXISTS (SELECT FROM latest) THEN %(worker_id)s::bigint
                             ELSE s.last_fired_by END
    WHERE s.id = %(id)s
)
SELECT tick_at, job_id FROM recorded ORDER BY tick_at;

-- name: seconds_until_next_tick
-- How long a scheduler may sleep (database time); NULL when no live schedule exists.
SELECT extract(epoch FROM min(coalesce(next_tick_at, now())) - now())::float8 AS seconds
FROM pgqueue.schedules
WHERE NOT paused AND NOT orphaned AND NOT (id = ANY(%(excluded)s::text[]))
  AND (ends_at IS NULL OR next_tick_at IS NULL OR next_tick_at <= ends_at);

-- name: prune_schedule_ticks
-- The tick ledger only has to outlive any doubt about a tick; old rows go (per schedule, so the
-- primary key index does the work).
DELETE FROM pgqueue.schedule_ticks AS t
USING pgqueue.schedules AS s
WHERE t.schedule_id = s.id AND t.tick_at < now() - make_interval(secs => %(retention)s)
RETURNING t.tick_at;

-- name: list_schedules
-- Every schedule, for the CLI and the Django admin.
SELECT id, task_name, cron, every, anchor_at, timezone, args, kwargs, queue, priority,
       max_attempts, misfire, misfire_grace, misfire_window, overlap, ends_at, origin,
       next_tick_at, restart_from, last_tick_at, last_job_id, last_fired_at, last_fired_by,
       skipped_ticks, overlap_skipped_ticks, paused, paused_at, orphaned, orphaned_at, last_seen_at, created_at
FROM pgqueue.schedules
ORDER BY id;

-- name: pause_schedule
SELECT pgqueue.pause_schedule(%(id)s) AS found;

-- name: resume_schedule
SELECT pgqueue.resume_schedule(%(id)s) AS found;

-- ==== retention ====

-- name: prune_finished_jobs
-- One batch of finished jobs older than their state's age (NULL: keep that state forever),
-- deleted in the caller's short transaction; callers loop until a batch comes back short.
SELECT pgqueue.prune_batch(
    make_interval(secs => %(keep_succeeded)s), make_interval(secs => %(keep_failed)s),
    make_interval(secs => %(keep_cancelled)s), %(batch_size)s) AS deleted;

-- name: unserved_jobs
-- Due jobs no live worker can claim, per queue and task (migration 0015): `pgqueue stats`.
SELECT queue, task_name, due FROM pgqueue.unserved_jobs;

-- name: delete_all_jobs
-- pgqueue.testing: forget every job between two tests of a user's suite (never used by the
-- engine). DELETE, not TRUNCATE: it takes no lock a worker of another test could wait behind.
DELETE FROM pgqueue.jobs;

-- name: count_prunable_jobs
-- What prune_finished_jobs would delete now, per state (`pgqueue prune --dry-run`): the same
-- predicate as pgqueue.prune_batch, counted through jobs_finished_at_idx.
SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE state = 'failed') AS failed,
       count(*) FILTER (WHERE state = 'cancelled') AS cancelled
FROM pgqueue.jobs
WHERE (state = 'succeeded' AND finished_at < now() - make_interval(secs => %(keep_succeeded)s))
   OR (state = 'failed' AND finished_at < now() - make_interval(secs => %(keep_failed)s))
   OR (state = 'cancelled' AND finished_at < now() - make_interval(secs => %(keep_cancelled)s));

-- name: set_queue_limit
-- One limit of one queue, for every worker at once (NULL clears it; migration 0010).
SELECT pgqueue.set_queue_limit(%(queue)s, %(limit_name)s, %(limit_value)s, %(set_by)s);

-- name: declare_queue_limit
-- A limit declared in code (App.queue), written at worker start unless an operator has set the
-- queue's limits at runtime: those stand until cleared (`pgqueue queue NAME --reset`).
SELECT pgqueue.set_queue_limit(%(queue)s, %(limit_name)s, %(limit_value)s, 'code') IS NULL
       AS written
WHERE NOT EXISTS (SELECT 1 FROM pgqueue.queue_limits
                  WHERE queue = %(queue)s AND set_by = 'operator');

-- name: reset_queue_limits
-- Forget a queue's limits (its declaration in code applies again at the next worker start).
DELETE FROM pgqueue.queue_limits WHERE queue = %(queue)s RETURNING queue;

-- name: get_queue_limits
-- A queue's limits, what runs under them now and what the rate limit's window has seen.
SELECT l.queue, l.concurrency, l.per_key_concurrency,
       CASE WHEN l.rate_limit IS NOT NULL
            THEN l.rate_limit || '/' || CASE l.rate_period WHEN interval '1 second' THEN 's'
                                         WHEN interval '1 minute' THEN 'm'
                                         WHEN interval '1 hour' THEN 'h' ELSE 'd' END
       END AS rate_limit,
       l.set_by,
       (SELECT count(*) FROM pgqueue.jobs AS j
        WHERE j.queue = l.queue AND j.state = 'running')::int AS running,
       (SELECT count(*) FROM pgqueue.queue_rate_starts AS r
        WHERE r.queue = l.queue AND r.started_at > now() - l.rate_period)::int
           AS started_in_window,
       EXISTS (SELECT 1 FROM pgqueue.paused_queues AS p WHERE p.queue = l.queue) AS paused
FROM pgqueue.queue_limits AS l
WHERE l.queue = %(queue)s;

-- name: pause_queue
-- Workers stop claiming from the queue (pgqueue.pause_queue, migration 0003).
SELECT pgqueue.pause_queue(%(queue)s) AS changed;

-- name: resume_queue
SELECT pgqueue.resume_queue(%(queue)s) AS changed;

-- name: queue_is_paused
SELECT pgqueue.queue_is_paused(%(queue)s) AS paused;

-- name: enqueue_workflow
-- A whole workflow in one round trip (pgqueue.enqueue_workflow, 0023): the steps, their args and
-- their kwargs as three JSON arrays, an edge as a pair of step positions; the ids come back in
-- step order. One statement per step took 2.2 s for a chord of 10,000 parents.
SELECT pgqueue.enqueue_workflow(%(workflow_id)s::uuid, %(steps)s::jsonb, %(args)s::jsonb,
                                %(kwargs)s::jsonb, %(edge_children)s::integer[],
                                %(edge_parents)s::integer[]) AS ids;

-- name: workflow_jobs
-- A workflow's jobs in enqueue order, with their states, results, timings and parents
-- (jobs_workflow_idx, then job_dependencies_child_idx per job: a workflow is tens of jobs, a
-- big chord thousands, each one index probe).
SELECT j.id, j.task_name, j.state::text AS state, j.result, j.error_type, j.error_message,
       j.attempts, j.max_attempts, j.enqueued_at, j.started_at, j.finished_at,
       ARRAY(SELECT d.parent_id FROM pgqueue.job_dependencies AS d
             WHERE d.child_id = j.id ORDER BY d.parent_id) AS parent_ids
FROM pgqueue.jobs AS j WHERE j.workflow_id = %(workflow_id)s::uuid ORDER BY j.id;

-- name: cancel_workflow
-- Cancel every unfinished job of a workflow (running ones are asked to abort); the jobs'
-- triggers cancel the blocked steps downstream too. Returns how many were cancelled or asked.
SELECT count(pgqueue.cancel_job(id)) AS cancelled
FROM (SELECT id FROM pgqueue.jobs
      WHERE workflow_id = %(workflow_id)s::uuid
        AND state::text NOT IN ('succeeded', 'failed', 'cancelled')
      ORDER BY id) AS unfinished;

-- name: watch_jobs
-- Mark jobs as waited for and read them (pgqueue.watch_jobs, 0020): the caller LISTENs on
-- pgqueue_done first, so an end committed after this read is announced.
SELECT id, state, result, error_type, error_message FROM pgqueue.watch_jobs(%(job_ids)s::bigint[]);
