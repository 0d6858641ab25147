-- pgqueue 0024: dependency edges go with their child. 0018's edges (pgqueue.job_dependencies)
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

-- 0023's trigger function (restated whole), which now also drops the edges of a child
-- deleted before this parent ended (the child's own trigger left them, see above).
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
        IF NOT FOUND THEN
            -- The child has ended (cancelled) or is gone. A gone child's edges go now: this
            -- one, and those its other parents marked done after its delete trigger ran (they
            -- left the release to a parent still to end, which ends here or later in (b)).
            DELETE FROM pgqueue.job_dependencies AS d
            WHERE d.child_id = edge.child_id AND (d.done OR d.parent_id = OLD.id)
              AND NOT EXISTS (SELECT FROM pgqueue.jobs AS j WHERE j.id = edge.child_id);
            CONTINUE;
        END IF;
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


-- The edges left so far by deleted children (one anti-join; an unsettled one's parent would
-- only have marked it done).
DELETE FROM pgqueue.job_dependencies AS d
WHERE NOT EXISTS (SELECT FROM pgqueue.jobs AS j WHERE j.id = d.child_id);

INSERT INTO pgqueue.migrations (name) VALUES ('0024_dependency_edges');
