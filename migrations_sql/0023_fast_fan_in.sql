-- pgqueue 0023: a chord of 10,000 parents as fast as 10,000 plain jobs (issue 15, "Speed and
-- proof"; measured by `python -m benchmarks chord`, docs/benchmarks.md "Chord").
--
-- 1. Enqueue: a workflow is written by one call, pgqueue.enqueue_workflow, where it took one
--    statement per step (10,001 round trips, 2.2 s for a 10,000-parent chord, then an UPDATE of
--    every row to tag it).
-- 2. Release: 0018's trigger decremented a counter on the child's row for every parent that
--    ended. That row was locked by each parent's acknowledgement until its durable commit, so
--    the acknowledgements of all workers queued behind one another on one row (the chord's run
--    took 2x as long as its 10,000 parents alone). Now a parent's end marks its edge done and
--    touches the child only when it may be the last parent:
--      a. if another parent has not ended and its end is not under way (its row is not locked),
--         lock that parent's row and leave the child to it: that parent's end waits for this
--         transaction to commit, and so sees this edge done;
--      b. otherwise (or when none of the 32 highest pending parents is free) lock the child's
--         row (the parents that got here first have then committed) and count the edges not
--         done again; none left: queue the child, with its parents' results.
--    Whatever order the transactions commit in, the one that commits last either found no
--    parent to leave the child to (b) and counted after every other had committed, or left it to
--    a parent whose end is still to come, which contradicts its being last: the child is never
--    stranded. It is queued once: the release is an UPDATE of a `blocked` row under its lock.
--    The parent to leave the child to is searched from the highest id down: parents are claimed
--    lowest first, so the highest are still queued (a lock on them delays no acknowledgement)
--    and the ended ones are not scanned. Measured per parent's acknowledgement, 10,000 parents:
--    +50 us of database CPU over a plain job ending lowest id first, +75 us highest first
--    (python -m benchmarks.chord_lockstep).
--    parents_pending is no longer counted down: it keeps the number of parents unfinished at
--    enqueue time, and becomes 0 when the child is queued.

CREATE INDEX job_dependencies_pending_idx ON pgqueue.job_dependencies (child_id, parent_id)
    WHERE NOT done;
COMMENT ON INDEX pgqueue.job_dependencies_pending_idx IS 'A child''s parents not ended yet, highest first: the release trigger''s search (0023).';
COMMENT ON COLUMN pgqueue.jobs.parents_pending IS 'A dependent job: its parents not finished when it was enqueued (it is blocked until they are); 0 once queued; NULL for other jobs.';

CREATE OR REPLACE FUNCTION pgqueue.jobs_settle_dependents() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    parent_state text := CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE NEW.state::text END;
    edge record;
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
                error_message = format('parent job %s ended %s', OLD.id, parent_state)
            WHERE id = edge.child_id AND state::text = 'blocked' AND on_parent_failure = 'cancel';
            CONTINUE WHEN FOUND;
        END IF;
        -- (a) A parent still to end, whose end is not under way: its end settles the child.
        -- The state test is re-checked on the row's newest version once locked, so a parent
        -- that ended after this statement's snapshot is passed over. The child's 32 highest
        -- pending edges first (a LIMIT: as a plain join, once statistics saw 10,000 edges, the
        -- plan became a merge join walking every ended parent, 1.7 ms a parent when they end
        -- highest id first); none of them free: (b) decides, slower (it waits), never wrong.
        PERFORM 1
        FROM (SELECT d.parent_id FROM pgqueue.job_dependencies AS d
              WHERE d.child_id = edge.child_id AND NOT d.done
              ORDER BY d.parent_id DESC LIMIT 32) AS d
        JOIN pgqueue.jobs AS p ON p.id = d.parent_id
        WHERE p.state::text NOT IN ('succeeded', 'failed', 'cancelled')
        ORDER BY d.parent_id DESC LIMIT 1
        FOR NO KEY UPDATE OF p SKIP LOCKED;
        CONTINUE WHEN FOUND;
        -- (b) Maybe the last: wait for the parents ending meanwhile, then count again.
        PERFORM 1 FROM pgqueue.jobs
        WHERE id = edge.child_id AND state::text = 'blocked' FOR NO KEY UPDATE;
        CONTINUE WHEN NOT FOUND;
        PERFORM 1 FROM pgqueue.job_dependencies
        WHERE child_id = edge.child_id AND NOT done
        ORDER BY parent_id DESC LIMIT 1;
        CONTINUE WHEN FOUND;
        -- Every parent has ended and committed (or is this statement's row): their results
        -- are visible here, in the parents' enqueue order.
        UPDATE pgqueue.jobs AS c
        SET state = 'queued', run_at = greatest(c.run_at, now()), parents_pending = 0,
            args = CASE WHEN c.pass_results IS NULL THEN c.args ELSE jsonb_build_array((
                SELECT CASE c.pass_results WHEN 'one' THEN (array_agg(p.result))[1]
                            ELSE coalesce(jsonb_agg(p.result ORDER BY p.id), '[]') END
                FROM pgqueue.job_dependencies AS d
                JOIN pgqueue.jobs AS p ON p.id = d.parent_id
                WHERE d.child_id = c.id)) || c.args END
        WHERE c.id = edge.child_id AND c.state::text = 'blocked';
        queued_any := true;
    END LOOP;
    IF queued_any THEN
        PERFORM pg_notify('pgqueue_jobs', '');
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pgqueue.jobs_settle_dependents() IS
    'Marks a finished parent''s edges done: queues a dependent once its last parent ended (migration 0023), or cancels it when a parent failed.';

-- A whole workflow in one call (pgqueue/canvas.py). `steps` is a JSON array with one object
-- per step; `args` and `kwargs` JSON arrays with one element per step (three documents the
-- server parses, where 10,000-element arrays of each column cost the driver 0.1 s of quoting);
-- an edge is a pair of step positions, counted from 1 (a parent is always an earlier step).
-- Ids are taken in step order, so a chord's parents are in header order (the callback's results
-- are ordered by id). Every job is new: the steps with parents start blocked, the others
-- queued. SECURITY DEFINER: a producer sets the workflow columns and edges of its own new jobs
-- only.
CREATE FUNCTION pgqueue.enqueue_workflow(
    workflow_id uuid, steps jsonb, args jsonb, kwargs jsonb, edge_children integer[],
    edge_parents integer[]
) RETURNS bigint[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    step_count integer := jsonb_array_length(steps);
    ids bigint[];
BEGIN
    IF jsonb_array_length(args) <> step_count OR jsonb_array_length(kwargs) <> step_count THEN
        RAISE EXCEPTION 'pgqueue.enqueue_workflow: one args and one kwargs per step'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(edge_children, edge_parents) AS e(child, parent)
               WHERE e.parent IS NULL OR e.child IS NULL OR e.parent < 1
                  OR e.parent >= e.child OR e.child > step_count) THEN
        RAISE EXCEPTION 'pgqueue.enqueue_workflow: an edge must join an earlier step to a later one'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    ids := ARRAY(SELECT nextval('pgqueue.jobs_id_seq'::regclass) AS id
                 FROM generate_series(1, step_count) ORDER BY id);
    INSERT INTO pgqueue.jobs (id, task_name, queue, args, kwargs, priority, run_at,
                              max_attempts, timeout_seconds, concurrency_key, state,
                              parents_pending, on_parent_failure, has_dependents, workflow_id,
                              pass_results)
    SELECT ids[s.position], s.task_name, s.queue, a.value, k.value, s.priority,
           coalesce(s.run_at, now() + make_interval(secs => s.delay)), s.max_attempts,
           s.timeout_seconds, s.concurrency_key,
           CASE WHEN c.parents IS NULL THEN 'queued' ELSE 'blocked' END::pgqueue.job_state,
           c.parents, CASE WHEN c.parents IS NOT NULL THEN s.on_parent_failure END,
           h.parent IS NOT NULL, enqueue_workflow.workflow_id, s.pass_results
    FROM ROWS FROM (jsonb_to_recordset(steps)
             AS (task_name text, queue text, priority integer, run_at timestamptz,
                 delay double precision, max_attempts integer,
                 timeout_seconds double precision, concurrency_key text,
                 on_parent_failure text, pass_results text)) WITH ORDINALITY
         AS s(task_name, queue, priority, run_at, delay, max_attempts, timeout_seconds,
              concurrency_key, on_parent_failure, pass_results, position)
    JOIN jsonb_array_elements(args) WITH ORDINALITY AS a(value, position)
         ON a.position = s.position
    JOIN jsonb_array_elements(kwargs) WITH ORDINALITY AS k(value, position)
         ON k.position = s.position
    LEFT JOIN (SELECT e.child, count(DISTINCT e.parent)::integer AS parents
               FROM unnest(edge_children, edge_parents) AS e(child, parent) GROUP BY e.child)
         AS c ON c.child = s.position
    LEFT JOIN (SELECT DISTINCT e.parent FROM unnest(edge_parents) AS e(parent))
         AS h ON h.parent = s.position
    ORDER BY s.position;
    INSERT INTO pgqueue.job_dependencies (parent_id, child_id)
    SELECT DISTINCT ids[e.parent], ids[e.child]
    FROM unnest(edge_children, edge_parents) AS e(child, parent);
    RETURN ids;
END;
$$;
COMMENT ON FUNCTION pgqueue.enqueue_workflow(uuid, jsonb, jsonb, jsonb, integer[], integer[]) IS
    'Enqueue a whole workflow (its steps and the edges between them) in one call; returns the ids in step order.';

-- 0020's tagging after the fact, replaced by enqueue_workflow.
DROP FUNCTION pgqueue.tag_workflow(uuid, bigint[], text[]);

INSERT INTO pgqueue.migrations (name) VALUES ('0023_fast_fan_in');
