-- pgqueue 0025 (measured as 0024 before renumbering): what every claim and acknowledgement paid for features it did not use.
-- 1. The checks of columns that claims and acknowledgements never write move from the jobs
--    table to the columns' types (domains), so an update that does not write a column no
--    longer pays for its check.
-- 2. The three AFTER UPDATE OF state triggers of a job's end (lock hand-over, watchers,
--    workflow dependents) become one (below).
--
-- Postgres evaluates every CHECK constraint of a table on every updated row, whichever columns
-- the update sets, and prepares each constraint's expression again for every statement (parsed
-- from its stored form and simplified): a claim or an acknowledgement of 10 jobs paid for all
-- fourteen. A domain's check runs only where a value is written to a column of that type: an
-- insert, or an update that sets the column. The five checks added with flow control and
-- workflows (keys, attempt errors, workflow columns) and the two on the arguments go to
-- domains; they guard exactly what they guarded (NULL passes, as it passed the CHECKs), and a
-- bad value is still refused with SQLSTATE 23514 (check_violation), now naming the domain's
-- constraint. Measured (docs/benchmarks.md, "After migration 0025"): a worker at c=10 draining
-- 10,000 jobs spent 78 us of database CPU a job on 0022, 70 with this migration (then numbered 0024)
-- (`python -m benchmarks flow --before 374133e --after 908a473`, 5 interleaved rounds).
--
-- concurrency_key keeps a CHECK on the table: a view (queue_flow, read by queue_stats and
-- queue_overview) uses the column, and changing its type would mean dropping and restating
-- them. The other columns the hot path never writes but views read (queue, task_name, run_at,
-- max_attempts, timeout_seconds) keep their CHECKs for the same reason.
--
-- No table rewrite: each column first takes a domain without a check (binary-compatible, so
-- Postgres only changes the catalog), then ALTER DOMAIN adds the check and validates the rows
-- in one scan.

CREATE DOMAIN pgqueue.job_key AS text;
COMMENT ON DOMAIN pgqueue.job_key IS 'A job''s unique_key or lock: 1 to 500 characters (NULL: none).';
CREATE DOMAIN pgqueue.job_errors AS jsonb;
COMMENT ON DOMAIN pgqueue.job_errors IS 'jobs.errors: a JSON array of attempt errors (NULL until one fails).';
CREATE DOMAIN pgqueue.job_args AS jsonb;
COMMENT ON DOMAIN pgqueue.job_args IS 'jobs.args: a JSON array of positional arguments.';
CREATE DOMAIN pgqueue.job_kwargs AS jsonb;
COMMENT ON DOMAIN pgqueue.job_kwargs IS 'jobs.kwargs: a JSON object of keyword arguments.';
CREATE DOMAIN pgqueue.job_parents_pending AS integer;
COMMENT ON DOMAIN pgqueue.job_parents_pending IS 'jobs.parents_pending: parents not finished yet, never negative.';
CREATE DOMAIN pgqueue.job_on_parent_failure AS text;
COMMENT ON DOMAIN pgqueue.job_on_parent_failure IS 'jobs.on_parent_failure: cancel or run.';
CREATE DOMAIN pgqueue.job_pass_results AS text;
COMMENT ON DOMAIN pgqueue.job_pass_results IS 'jobs.pass_results: one or list.';

-- The lock trigger's WHEN reads `lock`, 0024's edge trigger's `parents_pending`: a column a
-- trigger definition uses cannot change type.
DROP TRIGGER jobs_lock_enter_on_insert ON pgqueue.jobs;
DROP TRIGGER jobs_drop_settled_edges_on_delete ON pgqueue.jobs;

ALTER TABLE pgqueue.jobs
    DROP CONSTRAINT jobs_keys_check,
    DROP CONSTRAINT jobs_errors_check,
    DROP CONSTRAINT jobs_args_check,
    DROP CONSTRAINT jobs_kwargs_check,
    DROP CONSTRAINT jobs_parents_pending_check,
    DROP CONSTRAINT jobs_on_parent_failure_check,
    DROP CONSTRAINT jobs_pass_results_check,
    ALTER COLUMN unique_key TYPE pgqueue.job_key,
    ALTER COLUMN lock TYPE pgqueue.job_key,
    ALTER COLUMN errors TYPE pgqueue.job_errors,
    ALTER COLUMN args TYPE pgqueue.job_args,
    ALTER COLUMN kwargs TYPE pgqueue.job_kwargs,
    ALTER COLUMN parents_pending TYPE pgqueue.job_parents_pending,
    ALTER COLUMN on_parent_failure TYPE pgqueue.job_on_parent_failure,
    ALTER COLUMN pass_results TYPE pgqueue.job_pass_results,
    ADD CONSTRAINT jobs_concurrency_key_check CHECK (length(concurrency_key) BETWEEN 1 AND 500);
COMMENT ON CONSTRAINT jobs_concurrency_key_check ON pgqueue.jobs IS
    'concurrency_key: 1 to 500 characters, or NULL (a CHECK, not the job_key domain: the queue_flow view reads the column).';

ALTER DOMAIN pgqueue.job_key ADD CONSTRAINT job_key_check CHECK (length(VALUE) BETWEEN 1 AND 500);
ALTER DOMAIN pgqueue.job_errors ADD CONSTRAINT job_errors_check CHECK (jsonb_typeof(VALUE) = 'array');
ALTER DOMAIN pgqueue.job_args ADD CONSTRAINT job_args_check CHECK (jsonb_typeof(VALUE) = 'array');
ALTER DOMAIN pgqueue.job_kwargs ADD CONSTRAINT job_kwargs_check CHECK (jsonb_typeof(VALUE) = 'object');
ALTER DOMAIN pgqueue.job_parents_pending ADD CONSTRAINT job_parents_pending_check CHECK (VALUE >= 0);
ALTER DOMAIN pgqueue.job_on_parent_failure
    ADD CONSTRAINT job_on_parent_failure_check CHECK (VALUE IN ('cancel', 'run'));
ALTER DOMAIN pgqueue.job_pass_results ADD CONSTRAINT job_pass_results_check CHECK (VALUE IN ('one', 'list'));

CREATE TRIGGER jobs_lock_enter_on_insert BEFORE INSERT ON pgqueue.jobs
    FOR EACH ROW WHEN (NEW.lock IS NOT NULL)
    EXECUTE FUNCTION pgqueue.jobs_lock_enter();
CREATE TRIGGER jobs_drop_settled_edges_on_delete AFTER DELETE ON pgqueue.jobs
    FOR EACH ROW WHEN (OLD.parents_pending IS NOT NULL)
    EXECUTE FUNCTION pgqueue.jobs_drop_settled_edges();

-- One trigger for the end of a job, not three. Every AFTER UPDATE OF state row trigger made
-- each claim and acknowledgement (both set `state`) evaluate its WHEN for every row, prepared
-- again for every statement; three of them cost a claim and its acknowledgement ~11 us a job
-- in batches of 5, one with the three conditions merged ~5 (docs/benchmarks.md). The three
-- bodies become plain functions (run with the trigger function's owner rights when it calls
-- them, with the caller's otherwise: no one gains a right by calling them), called in the
-- order the three triggers fired (by name): the lock's hand-over, the watchers' NOTIFY, the
-- dependents. The DELETE triggers keep their functions, now wrappers of the same bodies.

CREATE FUNCTION pgqueue.lock_pass_on(lock_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    next_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('pgqueue.lock:' || lock_name, 0));
    IF NOT EXISTS (SELECT 1 FROM pgqueue.jobs AS j
                   WHERE j.lock = lock_name AND j.state IN ('queued', 'running')) THEN
        SELECT j.id INTO next_id FROM pgqueue.jobs AS j
        WHERE j.lock = lock_name AND j.state NOT IN ('succeeded', 'failed', 'cancelled')
        ORDER BY j.id LIMIT 1;
        IF next_id IS NOT NULL THEN
            UPDATE pgqueue.jobs AS j
            SET state = 'queued',
                lock_waited_on = EXISTS (
                    SELECT 1 FROM pgqueue.jobs AS w
                    WHERE w.lock = lock_name AND w.id <> next_id
                      AND w.state NOT IN ('succeeded', 'failed', 'cancelled'))
            WHERE j.id = next_id;
            PERFORM pg_notify('pgqueue_jobs', '');
        END IF;
    END IF;
END;
$$;
COMMENT ON FUNCTION pgqueue.lock_pass_on(text) IS
    'The job holding a lock ended while others waited: queues the oldest waiting job of the lock (marked when more wait behind it), unless an unfinished job of it is already queued or running.';
REVOKE EXECUTE ON FUNCTION pgqueue.lock_pass_on(text) FROM PUBLIC;

-- 0024's body of jobs_settle_dependents (0023's fan-in, a gone child's edges dropped),
-- as a plain function.
CREATE FUNCTION pgqueue.settle_dependents(ended_job_id bigint, parent_state text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    edge record;
    queued_any boolean := false;
BEGIN
    FOR edge IN
        UPDATE pgqueue.job_dependencies SET done = true
        WHERE parent_id = ended_job_id AND NOT done
        RETURNING child_id
    LOOP
        IF parent_state <> 'succeeded' THEN
            UPDATE pgqueue.jobs
            SET state = 'cancelled', finished_at = now(), error_type = 'ParentFailed',
                error_message = format('parent job %s ended %s', ended_job_id, parent_state)
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
            WHERE d.child_id = edge.child_id AND (d.done OR d.parent_id = ended_job_id)
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
END;
$$;
COMMENT ON FUNCTION pgqueue.settle_dependents(bigint, text) IS
    'Counts a finished (or deleted) parent against each dependent job once: queues it after the last parent, or cancels it when a parent failed.';
REVOKE EXECUTE ON FUNCTION pgqueue.settle_dependents(bigint, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgqueue.jobs_lock_pass_on() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pgqueue.lock_pass_on(OLD.lock);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION pgqueue.jobs_settle_dependents() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pgqueue.settle_dependents(
        OLD.id, CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE NEW.state::text END);
    RETURN NULL;
END;
$$;

CREATE FUNCTION pgqueue.jobs_on_finish() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF OLD.lock_waited_on THEN
        PERFORM pgqueue.lock_pass_on(OLD.lock);
    END IF;
    IF OLD.watched THEN
        PERFORM pg_notify('pgqueue_done', NEW.id::text);
    END IF;
    IF OLD.has_dependents THEN
        PERFORM pgqueue.settle_dependents(OLD.id, NEW.state::text);
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pgqueue.jobs_on_finish() IS
    'A job ended: hands its lock on (lock_waited_on), tells its waiters (watched, LISTEN pgqueue_done), settles its dependents (has_dependents).';

DROP TRIGGER jobs_lock_pass_on_finish ON pgqueue.jobs;
DROP TRIGGER jobs_notify_watchers_on_finish ON pgqueue.jobs;
DROP TRIGGER jobs_settle_dependents_on_finish ON pgqueue.jobs;
DROP FUNCTION pgqueue.jobs_notify_watchers();
CREATE TRIGGER jobs_on_finish AFTER UPDATE OF state ON pgqueue.jobs
    FOR EACH ROW WHEN ((OLD.lock_waited_on OR OLD.watched OR OLD.has_dependents)
                       AND NEW.state IN ('succeeded', 'failed', 'cancelled') AND OLD.state NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION pgqueue.jobs_on_finish();

INSERT INTO pgqueue.migrations (name) VALUES ('0025_column_domains');
