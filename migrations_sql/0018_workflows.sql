-- pgqueue 0018: job dependencies. A job may wait for other jobs (its parents) to succeed.
--
-- A dependent job is `blocked`: outside the claim indexes, like a `waiting` job, so any number of
-- them cost the claim nothing. `parents_pending` counts its parents not finished yet. Each edge
-- (pgqueue.job_dependencies) is settled exactly once, by a row trigger that fires IN THE SAME
-- TRANSACTION as the statement recording the parent's end (an acknowledgement batch, a rescue,
-- a cancel, a delete): a crash before that commit leaves the parent running (rescued, rerun, then
-- settled), a crash after it cannot settle it again (`done`). The last parent to succeed queues
-- the child; a parent ending failed or cancelled cancels a child whose on_parent_failure is
-- 'cancel' (the reason in its error columns), cascading to that child's own dependents; with
-- 'run', the child is queued once every parent has finished, however.
--
-- The trigger fires only for rows with has_dependents (a WHEN clause the executor tests before
-- calling any function): a job without dependents pays one boolean test in its acknowledgement.
-- Two parents finishing at once on two workers serialize on the child's row lock; the second
-- reads the count the first left (READ COMMITTED re-reads a locked row).
--
-- The new state 'blocked' cannot be used as a literal in the transaction that adds it: the
-- trigger conditions here name only the other states, and function bodies are parsed at run time.

ALTER TYPE pgqueue.job_state ADD VALUE IF NOT EXISTS 'blocked';

ALTER TABLE pgqueue.jobs
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false,
    ADD COLUMN parents_pending integer CONSTRAINT jobs_parents_pending_check CHECK (parents_pending >= 0),
    ADD COLUMN on_parent_failure text
        CONSTRAINT jobs_on_parent_failure_check CHECK (on_parent_failure IN ('cancel', 'run'));
COMMENT ON COLUMN pgqueue.jobs.has_dependents IS 'Some job depends on this one (pgqueue.job_dependencies): its end settles their edges.';
COMMENT ON COLUMN pgqueue.jobs.parents_pending IS 'A dependent job: parents not finished yet (it is blocked until 0); NULL for other jobs.';
COMMENT ON COLUMN pgqueue.jobs.on_parent_failure IS 'A dependent job: cancel (default) or run it when a parent fails or is cancelled.';

CREATE TABLE pgqueue.job_dependencies (
    parent_id bigint NOT NULL,
    child_id  bigint NOT NULL,
    done      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX job_dependencies_child_idx ON pgqueue.job_dependencies (child_id);
COMMENT ON TABLE pgqueue.job_dependencies IS 'Edges of job dependencies: child_id runs after parent_id; done once the parent''s end was counted.';

-- Enqueue a job that runs after `parent_ids`, in one statement (so nothing is half written):
-- locks the parents (so none finishes unseen meanwhile), refuses unknown ids, inserts the job
-- blocked, queued (every parent already succeeded) or cancelled (a parent already failed), and
-- its edges. SECURITY DEFINER: a producer marks parents without writing any other job column.
CREATE FUNCTION pgqueue.enqueue_after(
    parent_ids bigint[], on_parent_failure text, task_name text, queue text, args jsonb,
    kwargs jsonb, priority integer, run_at timestamptz, max_attempts integer,
    timeout_seconds double precision, unique_key text, concurrency_key text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    wanted bigint[] := ARRAY(SELECT DISTINCT unnest(parent_ids) ORDER BY 1);
    found bigint[];
    pending integer;
    ended_badly bigint;
    ended_as text;
    new_state text;
    job_id bigint;
BEGIN
    IF coalesce(cardinality(wanted), 0) = 0 THEN
        RAISE EXCEPTION 'pgqueue.enqueue_after: no parent job ids' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH locked AS (
        UPDATE pgqueue.jobs AS j SET has_dependents = true
        WHERE j.id = ANY(wanted)
        RETURNING j.id, j.state::text AS state
    )
    SELECT array_agg(l.id ORDER BY l.id),
           count(*) FILTER (WHERE l.state NOT IN ('succeeded', 'failed', 'cancelled')),
           min(l.id) FILTER (WHERE l.state IN ('failed', 'cancelled'))
    INTO found, pending, ended_badly FROM locked AS l;
    IF found IS DISTINCT FROM wanted THEN
        RAISE EXCEPTION 'pgqueue.enqueue_after: unknown parent job ids: %',
            ARRAY(SELECT unnest(wanted) EXCEPT SELECT unnest(found) ORDER BY 1)
            USING ERRCODE = 'foreign_key_violation', HINT = 'pgqueue:unknown_parents';
    END IF;
    IF ended_badly IS NOT NULL AND on_parent_failure = 'cancel' THEN
        new_state := 'cancelled';
        SELECT j.state::text INTO ended_as FROM pgqueue.jobs AS j WHERE j.id = ended_badly;
    ELSIF pending = 0 THEN
        new_state := 'queued';
    ELSE
        new_state := 'blocked';
    END IF;
    INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts,
                              timeout_seconds, unique_key, concurrency_key, state,
                              parents_pending, on_parent_failure, finished_at, error_type,
                              error_message)
    VALUES (task_name, queue, args, kwargs, priority, run_at, max_attempts, timeout_seconds,
            unique_key, concurrency_key, new_state::pgqueue.job_state, pending,
            on_parent_failure, CASE WHEN new_state = 'cancelled' THEN now() END,
            CASE WHEN new_state = 'cancelled' THEN 'ParentFailed' END,
            CASE WHEN new_state = 'cancelled'
                 THEN format('parent job %s ended %s', ended_badly, ended_as) END)
    RETURNING id INTO job_id;
    INSERT INTO pgqueue.job_dependencies (parent_id, child_id, done)
    SELECT j.id, job_id, j.state::text IN ('succeeded', 'failed', 'cancelled')
    FROM pgqueue.jobs AS j WHERE j.id = ANY(wanted);
    RETURN job_id;
END;
$$;
COMMENT ON FUNCTION pgqueue.enqueue_after(bigint[], text, text, text, jsonb, jsonb, integer, timestamptz, integer, double precision, text, text) IS
    'Enqueue a job that runs once every parent job has succeeded (on_parent_failure: cancel or run). Returns its id.';

-- A parent ended (or was deleted before ending): settle each of its unsettled edges once.
CREATE FUNCTION pgqueue.jobs_settle_dependents() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    parent_state text := CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE NEW.state::text END;
    edge record;
    remaining integer;
    queued_any boolean := false;
BEGIN
    FOR edge IN
        UPDATE pgqueue.job_dependencies SET done = true
        WHERE parent_id = OLD.id AND NOT done
        RETURNING child_id
    LOOP
        IF parent_state <> 'succeeded' THEN
            UPDATE pgqueue.jobs
            SET state = 'cancelled', finished_at = now(), error_type = 'ParentFailed',
                error_message = format('parent job %s ended %s', OLD.id, parent_state),
                parents_pending = parents_pending - 1
            WHERE id = edge.child_id AND state::text = 'blocked' AND on_parent_failure = 'cancel';
            CONTINUE WHEN FOUND;
        END IF;
        UPDATE pgqueue.jobs SET parents_pending = parents_pending - 1
        WHERE id = edge.child_id AND state::text = 'blocked'
        RETURNING parents_pending INTO remaining;
        IF FOUND AND remaining = 0 THEN
            UPDATE pgqueue.jobs SET state = 'queued', run_at = greatest(run_at, now())
            WHERE id = edge.child_id;
            queued_any := true;
        END IF;
    END LOOP;
    IF queued_any THEN
        PERFORM pg_notify('pgqueue_jobs', '');
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pgqueue.jobs_settle_dependents() IS
    'Counts a finished parent against each dependent job once: queues it after the last parent, or cancels it when a parent failed.';

CREATE TRIGGER jobs_settle_dependents_on_finish AFTER UPDATE OF state ON pgqueue.jobs
    FOR EACH ROW WHEN (OLD.has_dependents AND NEW.state IN ('succeeded', 'failed', 'cancelled')
                       AND OLD.state NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION pgqueue.jobs_settle_dependents();
CREATE TRIGGER jobs_settle_dependents_on_delete AFTER DELETE ON pgqueue.jobs
    FOR EACH ROW WHEN (OLD.has_dependents AND OLD.state NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION pgqueue.jobs_settle_dependents();

-- A blocked job is cancelled at once, like a queued or waiting one.
CREATE OR REPLACE FUNCTION pgqueue.cancel_job(job_id bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    new_state text;
    held_by bigint;
BEGIN
    UPDATE pgqueue.jobs
    SET state = CASE WHEN state::text IN ('queued', 'waiting', 'blocked') THEN 'cancelled'
                     ELSE state END::pgqueue.job_state,
        finished_at = CASE WHEN state::text IN ('queued', 'waiting', 'blocked') THEN now()
                           ELSE finished_at END,
        abort_requested = (state = 'running')
    WHERE id = cancel_job.job_id AND state NOT IN ('succeeded', 'failed', 'cancelled')
    RETURNING state::text, worker_id INTO new_state, held_by;
    IF held_by IS NOT NULL THEN
        PERFORM pg_notify('pgqueue_abort', held_by::text);
    END IF;
    RETURN new_state;
END;
$$;

INSERT INTO pgqueue.migrations (name) VALUES ('0018_workflows');
