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
--                     pgqueue.enqueue(). It cannot read arguments or results of any job.
--   pgqueue_worker    the engine: claims and records jobs (and enqueues follow-up jobs from
--                     tasks), registers and heartbeats, rescues jobs of dead workers, reads
--                     pgqueue.paused_queues and pgqueue.migrations but cannot change them.
--   pgqueue_observer  reads the DBA views (queue_stats, task_stats, stuck_jobs,
--                     workers_overview, health) and nothing else: no job arguments or results.
--                     `pgqueue top` needs no more. Add pg_read_all_stats to let it see the age
--                     of other roles' transactions in pgqueue.health.
--
-- Retrying, cancelling, pausing and pruning stay with the schema owner (the functions are
-- SECURITY INVOKER: they can do only what the caller's table privileges allow).
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

-- producer -----------------------------------------------------------------------------------
GRANT INSERT (task_name, queue, args, kwargs, priority, run_at, max_attempts, timeout_seconds)
    ON pgqueue.jobs TO pgqueue_producer;
GRANT SELECT (id) ON pgqueue.jobs TO pgqueue_producer;  -- INSERT ... RETURNING id
GRANT EXECUTE ON FUNCTION pgqueue.enqueue(text, jsonb, text, integer, timestamptz, integer)
    TO pgqueue_producer;

-- worker -------------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON pgqueue.jobs, pgqueue.workers TO pgqueue_worker;
GRANT SELECT ON pgqueue.migrations, pgqueue.paused_queues TO pgqueue_worker;
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
    pgqueue.workers_overview, pgqueue.health TO pgqueue_observer;
