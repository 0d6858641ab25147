-- pgqueue 0009: unique jobs and locks, enforced by the database.
--
-- unique_key: at most one job with that key is queued, waiting or running at a time, enforced
-- by a unique partial index (not a check-then-insert, which two producers could both pass).
-- Enqueueing a duplicate returns the job that holds the key (or, asked to, raises). Once that
-- job has finished (succeeded, failed or cancelled), the key is free again and a new job may
-- take it; an operator retry of the old job then fails while the new one holds the key.
--
-- lock: jobs sharing a lock never run at the same time, anywhere, and start in enqueue order.
-- Only the oldest unfinished job of a lock is `queued` (or `running`); the others are
-- `waiting`, outside the claim indexes, so a held lock costs the claim nothing however many
-- jobs wait on it. When the job holding the lock finishes (or is deleted), the next waiting
-- one becomes `queued`, in the same transaction (triggers below). A unique index makes "one
-- per lock" a fact, not a hope. Inserts and hand-overs of one lock are serialized by a
-- transaction-scoped advisory lock on the lock's name.
--
-- The new state 'waiting' cannot be used (as a literal) in the transaction that adds it: the
-- indexes and views here name the states a job leaves it for, and compare state::text.

ALTER TYPE pgqueue.job_state ADD VALUE IF NOT EXISTS 'waiting';

ALTER TABLE pgqueue.jobs
    ADD COLUMN unique_key text
        CONSTRAINT jobs_unique_key_check CHECK (length(unique_key) BETWEEN 1 AND 500),
    ADD COLUMN lock text
        CONSTRAINT jobs_lock_check CHECK (length(lock) BETWEEN 1 AND 500);
COMMENT ON COLUMN pgqueue.jobs.unique_key IS
    'At most one unfinished (queued, waiting or running) job holds a given key (jobs_unique_key_idx); NULL: not unique.';
COMMENT ON COLUMN pgqueue.jobs.lock IS
    'Jobs sharing a lock run one at a time, in enqueue order: the oldest unfinished one is queued or running, the others waiting (jobs_lock_holder_idx); NULL: no lock.';

CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled');
CREATE UNIQUE INDEX jobs_lock_holder_idx ON pgqueue.jobs (lock)
    WHERE lock IS NOT NULL AND state IN ('queued', 'running');
CREATE INDEX jobs_lock_line_idx ON pgqueue.jobs (lock, id)
    WHERE lock IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled');

-- A job entering the line of a lock (inserted, or queued again by an operator) waits when an
-- unfinished job of that lock is ahead of it.
-- Both trigger functions run as the schema owner (SECURITY DEFINER): the producer who inserts,
-- or the worker whose acknowledgement finishes a job, need not read other jobs themselves.
CREATE FUNCTION pgqueue.jobs_lock_enter() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('pgqueue.lock:' || NEW.lock, 0));
    IF NEW.state::text = 'queued' AND EXISTS (
            SELECT 1 FROM pgqueue.jobs AS j
            WHERE j.lock = NEW.lock AND j.id <> NEW.id
              AND j.state NOT IN ('succeeded', 'failed', 'cancelled')) THEN
        NEW.state := 'waiting';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION pgqueue.jobs_lock_enter() IS
    'A job of a lock that an unfinished job already holds or waits for becomes waiting.';

-- The job holding a lock finished (or was deleted): the oldest waiting job of the lock is
-- queued, unless an unfinished job of it is already queued or running.
CREATE FUNCTION pgqueue.jobs_lock_pass_on() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    lock_name text := OLD.lock;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('pgqueue.lock:' || lock_name, 0));
    IF NOT EXISTS (SELECT 1 FROM pgqueue.jobs AS j
                   WHERE j.lock = lock_name AND j.state IN ('queued', 'running')) THEN
        UPDATE pgqueue.jobs SET state = 'queued'
        WHERE id = (SELECT j.id FROM pgqueue.jobs AS j
                    WHERE j.lock = lock_name AND j.state NOT IN ('succeeded', 'failed', 'cancelled')
                    ORDER BY j.id LIMIT 1);
        PERFORM pg_notify('pgqueue_jobs', '');
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pgqueue.jobs_lock_pass_on() IS
    'Queues the next waiting job of a lock whose holder finished or was deleted.';

CREATE TRIGGER jobs_lock_enter_on_insert BEFORE INSERT ON pgqueue.jobs
    FOR EACH ROW WHEN (NEW.lock IS NOT NULL)
    EXECUTE FUNCTION pgqueue.jobs_lock_enter();
CREATE TRIGGER jobs_lock_enter_on_requeue BEFORE UPDATE OF state ON pgqueue.jobs
    FOR EACH ROW WHEN (NEW.lock IS NOT NULL AND OLD.state IN ('succeeded', 'failed', 'cancelled')
                       AND NEW.state = 'queued')
    EXECUTE FUNCTION pgqueue.jobs_lock_enter();
CREATE TRIGGER jobs_lock_pass_on_finish AFTER UPDATE OF state ON pgqueue.jobs
    FOR EACH ROW WHEN (OLD.lock IS NOT NULL AND NEW.state IN ('succeeded', 'failed', 'cancelled')
                       AND OLD.state NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION pgqueue.jobs_lock_pass_on();
CREATE TRIGGER jobs_lock_pass_on_delete AFTER DELETE ON pgqueue.jobs
    FOR EACH ROW WHEN (OLD.lock IS NOT NULL AND OLD.state NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION pgqueue.jobs_lock_pass_on();

DROP FUNCTION pgqueue.enqueue(text, jsonb, text, integer, timestamptz, integer);
CREATE FUNCTION pgqueue.enqueue(
    task_name    text,
    args         jsonb DEFAULT '[]',
    queue        text DEFAULT 'default',
    priority     integer DEFAULT 0,
    run_at       timestamptz DEFAULT now(),
    max_attempts integer DEFAULT 3,
    unique_key   text DEFAULT NULL,
    lock         text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    args_kind text := jsonb_typeof(enqueue.args);
    job_id bigint;
BEGIN
    IF args_kind NOT IN ('array', 'object') THEN
        RAISE EXCEPTION 'pgqueue.enqueue: args must be a JSON array (positional arguments) or object (keyword arguments), not a JSON %', args_kind
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_path_exists(enqueue.args,
                         'strict $.**{100} ? (@.type() == "array" || @.type() == "object")') THEN
        RAISE EXCEPTION 'pgqueue.enqueue: args are nested more than 100 arrays/objects deep'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_path_exists(enqueue.args,
                         'strict $.** ? (@.type() == "number" && (@ >= 1e4300 || @ <= -1e4300))') THEN
        RAISE EXCEPTION 'pgqueue.enqueue: args hold an integer of more than 4300 digits, which no worker decodes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.task_name ~ '[\x01-\x1f\x7f-\x9f]' OR enqueue.queue ~ '[\x01-\x1f\x7f-\x9f]' THEN
        RAISE EXCEPTION 'pgqueue.enqueue: task and queue names must not contain control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- A duplicate returns the job holding the key. That job may finish between the conflict
    -- and the lookup (the key is then free): try again.
    FOR attempt IN 1..3 LOOP
        INSERT INTO pgqueue.jobs (task_name, args, kwargs, queue, priority, run_at,
                                  max_attempts, unique_key, lock)
        VALUES (
            enqueue.task_name,
            CASE WHEN args_kind = 'array' THEN enqueue.args ELSE '[]' END,
            CASE WHEN args_kind = 'object' THEN enqueue.args ELSE '{}' END,
            enqueue.queue, enqueue.priority, enqueue.run_at, enqueue.max_attempts,
            enqueue.unique_key, enqueue.lock
        )
        ON CONFLICT (unique_key)
            WHERE unique_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled')
        DO NOTHING
        RETURNING id INTO job_id;
        IF job_id IS NULL THEN
            SELECT j.id INTO job_id FROM pgqueue.jobs AS j
            WHERE j.unique_key = enqueue.unique_key
              AND j.state NOT IN ('succeeded', 'failed', 'cancelled');
        END IF;
        IF job_id IS NOT NULL THEN
            RETURN job_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'pgqueue.enqueue: unique key % kept changing hands; try again', enqueue.unique_key
        USING ERRCODE = 'serialization_failure';
END;
$$;
COMMENT ON FUNCTION pgqueue.enqueue(text, jsonb, text, integer, timestamptz, integer, text, text) IS
    'Enqueue a job from SQL: args is a JSON array (positional) or object (keyword arguments), NULL for none. With unique_key, returns the unfinished job holding that key instead of adding another; with lock, the job runs after every unfinished job of that lock, alone. Returns the job id. Refuses what no worker could run (docs/sql.md).';

-- A waiting job is cancelled at once, like a queued one.
CREATE OR REPLACE FUNCTION pgqueue.cancel_job(job_id bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    new_state text;
    held_by bigint;
BEGIN
    UPDATE pgqueue.jobs
    SET state = CASE WHEN state::text IN ('queued', 'waiting') THEN 'cancelled'
                     ELSE state END::pgqueue.job_state,
        finished_at = CASE WHEN state::text IN ('queued', 'waiting') THEN now()
                           ELSE finished_at END,
        abort_requested = (state = 'running')
    WHERE id = cancel_job.job_id AND state NOT IN ('succeeded', 'failed', 'cancelled')
    RETURNING state::text, worker_id INTO new_state, held_by;
    IF held_by IS NOT NULL THEN
        -- The worker acts on it now; were the notification missed, at its next heartbeat.
        PERFORM pg_notify('pgqueue_abort', held_by::text);
    END IF;
    RETURN new_state;
END;
$$;

INSERT INTO pgqueue.migrations (name) VALUES ('0009_job_keys');
