-- pgqueue 0020: workflows (canvas). chain / group / chord enqueue jobs linked by the
-- dependencies of 0018, tagged with one workflow_id, in one transaction (pgqueue/canvas.py).
--
-- A step of a chain receives its parent's result as its first argument, a chord's callback the
-- list of its parents' results (in enqueue order). The release trigger writes them into the
-- child's args in the very UPDATE that queues it, so the worker claims an ordinary job and reads
-- nothing more; jobs without dependents still pay one boolean test in their acknowledgement.

ALTER TABLE pgqueue.jobs
    ADD COLUMN workflow_id uuid,
    ADD COLUMN pass_results text
        CONSTRAINT jobs_pass_results_check CHECK (pass_results IN ('one', 'list'));
COMMENT ON COLUMN pgqueue.jobs.workflow_id IS 'The workflow (chain, group, chord) this job belongs to; NULL for a lone job.';
COMMENT ON COLUMN pgqueue.jobs.pass_results IS 'A workflow step: its args get its parent''s result (one) or the list of its parents'' results (list) prepended when it is queued.';
CREATE INDEX jobs_workflow_idx ON pgqueue.jobs (workflow_id) WHERE workflow_id IS NOT NULL;

-- Tag the jobs a workflow just enqueued (in the same transaction) with its id and with how each
-- receives its parents' results. SECURITY DEFINER: a producer cannot update jobs; it can only
-- tag jobs not yet started and not in a workflow.
CREATE FUNCTION pgqueue.tag_workflow(workflow_id uuid, job_ids bigint[], pass_results text[])
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    WITH tagged AS (
        UPDATE pgqueue.jobs AS j SET workflow_id = tag_workflow.workflow_id, pass_results = t.pass
        FROM unnest(tag_workflow.job_ids, tag_workflow.pass_results) AS t(id, pass)
        WHERE j.id = t.id AND j.workflow_id IS NULL AND j.attempts = 0
          AND j.state::text IN ('queued', 'blocked', 'cancelled')
        RETURNING 1
    )
    SELECT count(*)::integer FROM tagged;
$$;
COMMENT ON FUNCTION pgqueue.tag_workflow(uuid, bigint[], text[]) IS
    'Marks jobs enqueued by one workflow (its id, how each step receives its parents'' results).';

-- 0018's trigger function, which now also hands results on as it queues a child.
CREATE OR REPLACE FUNCTION pgqueue.jobs_settle_dependents() RETURNS trigger
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
            -- Every parent has ended and committed (or is this statement's row): their results
            -- are visible here, in the parents' enqueue order.
            UPDATE pgqueue.jobs AS c
            SET state = 'queued', run_at = greatest(c.run_at, now()),
                args = CASE WHEN c.pass_results IS NULL THEN c.args ELSE jsonb_build_array((
                    SELECT CASE c.pass_results WHEN 'one' THEN (array_agg(p.result))[1]
                                ELSE coalesce(jsonb_agg(p.result ORDER BY p.id), '[]') END
                    FROM pgqueue.job_dependencies AS d
                    JOIN pgqueue.jobs AS p ON p.id = d.parent_id
                    WHERE d.child_id = c.id)) || c.args END
            WHERE c.id = edge.child_id;
            queued_any := true;
        END IF;
    END LOOP;
    IF queued_any THEN
        PERFORM pg_notify('pgqueue_jobs', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE VIEW pgqueue.workflow_status AS
SELECT workflow_id,
       count(*) AS jobs,
       count(*) FILTER (WHERE state::text = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE state::text = 'failed') AS failed,
       count(*) FILTER (WHERE state::text = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE state::text = 'running') AS running,
       count(*) FILTER (WHERE state::text NOT IN ('succeeded', 'failed', 'cancelled', 'running'))
           AS pending,
       CASE WHEN bool_and(state::text = 'succeeded') THEN 'succeeded'
            WHEN bool_or(state::text NOT IN ('succeeded', 'failed', 'cancelled')) THEN 'running'
            ELSE 'failed' END AS status,
       min(enqueued_at) AS enqueued_at,
       CASE WHEN bool_and(state::text IN ('succeeded', 'failed', 'cancelled'))
            THEN max(finished_at) END AS finished_at
FROM pgqueue.jobs
WHERE workflow_id IS NOT NULL
GROUP BY workflow_id;
COMMENT ON VIEW pgqueue.workflow_status IS
    'One row per workflow: its jobs by state, and succeeded / running / failed (a job failed or was cancelled).';

-- Waiting for a job (App.wait, WorkflowHandle.wait): the waiter LISTENs on pgqueue_done, marks
-- the job `watched`, then reads it; the job's end sends its id on pgqueue_done, from a row
-- trigger in the transaction recording it (so the NOTIFY is delivered when that commits). Like
-- 0018's, the trigger fires only for watched rows: other jobs pay one boolean test.
ALTER TABLE pgqueue.jobs ADD COLUMN watched boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN pgqueue.jobs.watched IS 'Someone waits for this job: its end sends a NOTIFY on pgqueue_done with its id.';

CREATE FUNCTION pgqueue.watch_jobs(job_ids bigint[])
RETURNS TABLE (id bigint, state text, result jsonb, error_type text, error_message text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    UPDATE pgqueue.jobs AS j SET watched = true
    WHERE j.id = ANY(watch_jobs.job_ids) AND NOT j.watched
      AND j.state::text NOT IN ('succeeded', 'failed', 'cancelled');
    SELECT j.id, j.state::text, j.result, j.error_type, j.error_message
    FROM pgqueue.jobs AS j WHERE j.id = ANY(watch_jobs.job_ids) ORDER BY j.id;
$$;
COMMENT ON FUNCTION pgqueue.watch_jobs(bigint[]) IS
    'Marks jobs as waited for (their end sends a NOTIFY on pgqueue_done) and returns their states and results.';

CREATE FUNCTION pgqueue.jobs_notify_watchers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pgqueue_done', NEW.id::text);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pgqueue.jobs_notify_watchers() IS 'Tells waiters (LISTEN pgqueue_done) that a watched job ended.';
CREATE TRIGGER jobs_notify_watchers_on_finish AFTER UPDATE OF state ON pgqueue.jobs
    FOR EACH ROW WHEN (OLD.watched AND NEW.state IN ('succeeded', 'failed', 'cancelled')
                       AND OLD.state NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION pgqueue.jobs_notify_watchers();

INSERT INTO pgqueue.migrations (name) VALUES ('0020_canvas');
