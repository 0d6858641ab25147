-- pgqueue least-privilege roles. Optional, and NOT applied by `pgqueue migrate` (it is not a
-- numbered migration): a DBA applies it, as the owner of the pgqueue schema, in every database
-- that holds pgqueue, and again after each `pgqueue migrate` (it is idempotent):
--
--     psql -v ON_ERROR_STOP=1 -d app -f migrations_sql/roles.sql
--
-- It creates three group roles (NOLOGIN) and grants them exactly what their job needs; give
-- each login role the group that fits it:
--
--     GRANT pgqueue_producer TO web_app;     -- the web app enqueues
--     GRANT pgqueue_worker   TO job_runner;  -- `pgqueue worker` connects as job_runner
--     GRANT pgqueue_observer TO grafana;     -- dashboards, `pgqueue top`
--
--   pgqueue_producer  enqueue only: INSERT new jobs (only the columns a producer sets: never
--                     state, attempts, worker or outcome columns), read back their ids, call
--                     pgqueue.enqueue(). It cannot read arguments or results of any job. It
--                     sees job ids (and so how many rows the table holds): INSERT ... RETURNING
--                     id needs SELECT on id; bulk enqueue reserves ids from the sequence first;
--                     unique enqueues read unique_key and state (which keys are held).
--   pgqueue_worker    the engine: claims and records jobs (and enqueues follow-up jobs from
--                     tasks), registers and heartbeats, rescues jobs of dead workers, prunes
--                     finished jobs (its retention service, pgqueue.prune_batch), reads
--                     pgqueue.paused_queues and pgqueue.migrations but cannot change them. It
--                     writes a job's life-cycle columns only, never what a job runs (task,
--                     queue, arguments, priority, attempts allowed, timeout).
--   pgqueue_observer  reads the DBA views (queue_stats, task_stats, stuck_jobs,
--                     workers_overview, worker_children, health, queue_flow, queue_overview,
--                     unserved_jobs) and nothing else: no job arguments or results.
--                     `pgqueue top` needs no more. Add pg_read_all_stats to let it see the age
--                     of other roles' transactions in pgqueue.health.
--
-- Retrying, cancelling, pausing and the pgqueue.prune procedure stay with the schema owner:
-- EXECUTE on those functions is revoked from PUBLIC (grant it to an operator role to share
-- them). They are SECURITY INVOKER, so the revoke is what keeps them from the worker, whose
-- table privileges would let them run; those same privileges let its credentials requeue or
-- cancel a job with a plain UPDATE: the split keeps operators' tools out of the engine's hands,
-- it is no wall against a stolen worker password.
-- Role names are cluster-wide; to use other names, replace them in a copy of this file.
-- To remove: REVOKE the groups from login roles, run DROP OWNED BY <role> in each database,
-- then DROP ROLE.

DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['pgqueue_producer', 'pgqueue_worker', 'pgqueue_observer']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
        END IF;
    END LOOP;
END;
$$;
COMMENT ON ROLE pgqueue_producer IS 'pgqueue: enqueue jobs only (migrations_sql/roles.sql).';
COMMENT ON ROLE pgqueue_worker IS 'pgqueue: run workers (migrations_sql/roles.sql).';
COMMENT ON ROLE pgqueue_observer IS 'pgqueue: read the DBA views only (migrations_sql/roles.sql).';

GRANT USAGE ON SCHEMA pgqueue TO pgqueue_producer, pgqueue_worker, pgqueue_observer;

-- operators' functions: the schema owner's ----------------------------------------------------
REVOKE EXECUTE ON FUNCTION pgqueue.retry_job(bigint), pgqueue.cancel_job(bigint),
    pgqueue.retry_failed(text, timestamptz, text), pgqueue.pause_queue(text, text),
    pgqueue.resume_queue(text), pgqueue.pause_schedule(text), pgqueue.resume_schedule(text),
    pgqueue.prune_batch(interval, interval, interval, integer) FROM PUBLIC;
-- enqueue_after is SECURITY DEFINER (it marks parents a producer cannot update): producers and
-- workers only, granted below.
REVOKE EXECUTE ON FUNCTION pgqueue.enqueue_after(bigint[], text, text, text, jsonb, jsonb,
    integer, timestamptz, integer, double precision, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pgqueue.enqueue_workflow(uuid, jsonb, jsonb, jsonb, integer[],
    integer[]), pgqueue.watch_jobs(bigint[]) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE pgqueue.prune(interval, interval, interval, integer, bigint)
    FROM PUBLIC;

-- producer -----------------------------------------------------------------------------------
-- id: a bulk enqueue (defer_many of 500 jobs or more) reserves its ids with nextval(), then
-- COPYs them (COPY returns nothing). A producer could so pick an id the sequence will hand out
-- later and make that later insert fail: producers are trusted not to sabotage the queue (they
-- can flood it anyway).
-- unique_key, state: a unique enqueue (INSERT ... ON CONFLICT on jobs_unique_key_idx, whose
-- predicate reads state) needs to read them, and so sees which keys are held and by jobs in
-- which state; never arguments or results.
GRANT INSERT (id, task_name, queue, args, kwargs, priority, run_at, max_attempts,
              timeout_seconds, unique_key, lock, concurrency_key)
    ON pgqueue.jobs TO pgqueue_producer;
GRANT SELECT (id, unique_key, state) ON pgqueue.jobs TO pgqueue_producer;
GRANT USAGE ON SEQUENCE pgqueue.jobs_id_seq TO pgqueue_producer;
GRANT EXECUTE ON FUNCTION pgqueue.enqueue(text, jsonb, text, integer, timestamptz, integer, text,
                                          text)
    TO pgqueue_producer;
GRANT EXECUTE ON FUNCTION pgqueue.enqueue_after(bigint[], text, text, text, jsonb, jsonb,
    integer, timestamptz, integer, double precision, text, text)
    TO pgqueue_producer, pgqueue_worker;
-- watch_jobs returns the results of the jobs named: a producer waiting for its own jobs
-- (App.wait) reads them, as it reads nothing else of the table.
GRANT EXECUTE ON FUNCTION pgqueue.enqueue_workflow(uuid, jsonb, jsonb, jsonb, integer[],
    integer[]), pgqueue.watch_jobs(bigint[]) TO pgqueue_producer, pgqueue_worker;

-- worker -------------------------------------------------------------------------------------
-- Jobs: what a producer may insert (follow-up jobs, periodic ticks), and a job's life cycle
-- (claim, outcome, retry, release, rescue) as every UPDATE in pgqueue/sql/queries.sql writes it.
-- The REVOKE drops table-wide grants an earlier version of this file made (it revokes the
-- column grants too, given again just below), so re-applying the file narrows an old install.
REVOKE INSERT, UPDATE ON pgqueue.jobs FROM pgqueue_worker;
GRANT SELECT, DELETE ON pgqueue.jobs TO pgqueue_worker;
GRANT INSERT (id, task_name, queue, args, kwargs, priority, run_at, max_attempts,
              timeout_seconds, unique_key, lock, concurrency_key)
    ON pgqueue.jobs TO pgqueue_worker;
GRANT UPDATE (state, attempts, worker_id, claim_token, abort_requested, run_at, started_at,
              finished_at, result, error_type, error_message, error_traceback, errors,
              progress, progress_message, progress_at, meta)
    ON pgqueue.jobs TO pgqueue_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON pgqueue.workers TO pgqueue_worker;
GRANT SELECT ON pgqueue.migrations, pgqueue.paused_queues TO pgqueue_worker;
GRANT EXECUTE ON FUNCTION pgqueue.prune_batch(interval, interval, interval, integer)
    TO pgqueue_worker;
-- Tables later migrations add (periodic schedules, ...) are the engine's own state too: the
-- worker reads and writes them. Only the operator-controlled tables above stay read-only.
DO $$
DECLARE
    table_name text;
BEGIN
    FOR table_name IN
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = 'pgqueue'::regnamespace AND c.relkind IN ('r', 'p')
          AND c.relname NOT IN ('jobs', 'workers', 'migrations', 'paused_queues')
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON pgqueue.%I TO pgqueue_worker',
                       table_name);
    END LOOP;
END;
$$;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgqueue TO pgqueue_worker;

-- observer -----------------------------------------------------------------------------------
GRANT SELECT ON pgqueue.queue_stats, pgqueue.task_stats, pgqueue.stuck_jobs,
    pgqueue.workers_overview, pgqueue.health, pgqueue.queue_flow, pgqueue.queue_overview,
    pgqueue.unserved_jobs, pgqueue.worker_children, pgqueue.workflow_status,
    pgqueue.running_jobs
    TO pgqueue_observer;
