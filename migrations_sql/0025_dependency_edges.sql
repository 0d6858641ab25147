-- pgqueue 0025: dependency edges go with their child. 0018's edges (pgqueue.job_dependencies)
-- were never deleted: every pruned workflow left its edges behind (a chord of 10,000 parents,
-- 10,000 rows a run), without bound.
--
-- An edge goes when its CHILD row is deleted (retention, --delete-jobs, a DBA's DELETE). While
-- the child exists its edges stay, even to parents pruned already: its page still names them.
--
-- The child's delete trigger drops only its settled edges (done). An unsettled one belongs to a
-- parent that has not ended, whose end (or delete) takes the edge's lock and then the child's
-- row lock; dropping it from the child's side would take the same two locks in the other order
-- and could deadlock with that parent's acknowledgement. The parent's trigger drops it instead,
-- when it finds the child gone. A DELETE skips a row its snapshot sees unsettled without waiting
-- for a concurrent settle, so the two triggers never wait on each other.
--
-- Cost: the trigger fires only for dependent jobs (parents_pending is set for them alone, by
-- pgqueue.enqueue_after); deleting any other job pays one NULL test, like 0018's triggers.

CREATE FUNCTION pgqueue.jobs_drop_settled_edges() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    DELETE FROM pgqueue.job_dependencies WHERE child_id = OLD.id AND done;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pgqueue.jobs_drop_settled_edges() IS
    'A dependent job was deleted: drop its settled dependency edges (its parents drop the others as they end).';

CREATE TRIGGER jobs_drop_settled_edges_on_delete AFTER DELETE ON pgqueue.jobs
    FOR EACH ROW WHEN (OLD.parents_pending IS NOT NULL)
    EXECUTE FUNCTION pgqueue.jobs_drop_settled_edges();

-- 0020's trigger function, which now also drops an edge whose child was deleted before this
-- parent ended (the child's own trigger left it, see above).
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
        IF NOT FOUND THEN
            -- The child has ended (cancelled) or is gone. A new statement, so it sees a delete
            -- the UPDATE above waited for: a gone child's edge goes now.
            DELETE FROM pgqueue.job_dependencies AS d
            WHERE d.parent_id = OLD.id AND d.child_id = edge.child_id
              AND NOT EXISTS (SELECT FROM pgqueue.jobs AS j WHERE j.id = edge.child_id);
        ELSIF remaining = 0 THEN
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

-- The edges left so far by deleted children (one anti-join; an unsettled one's parent would
-- only have marked it done).
DELETE FROM pgqueue.job_dependencies AS d
WHERE NOT EXISTS (SELECT FROM pgqueue.jobs AS j WHERE j.id = d.child_id);

INSERT INTO pgqueue.migrations (name) VALUES ('0025_dependency_edges');
