-- pgqueue 0024: the checks of columns that claims and acknowledgements never write move from
-- the jobs table to the columns' types (domains), so an update that does not write a column
-- no longer pays for its check.
--
-- Postgres evaluates every CHECK constraint of a table on every updated row, whichever columns
-- the update sets, and prepares each constraint's expression again for every statement (parsed
-- from its stored form and simplified): a claim or an acknowledgement of 10 jobs paid for all
-- fourteen. A domain's check runs only where a value is written to a column of that type: an
-- insert, or an update that sets the column. The five checks added with flow control and
-- workflows (keys, attempt errors, workflow columns) and the two on the arguments go to
-- domains; they guard exactly what they guarded (NULL passes, as it passed the CHECKs), and a
-- bad value is still refused with SQLSTATE 23514 (check_violation), now naming the domain's
-- constraint. Measured (docs/benchmarks.md, "After migration 0024"): a worker at c=10 draining
-- 10,000 jobs spent 78 us of database CPU a job on 0022, 70 on 0024
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

-- The lock trigger's WHEN reads `lock`: a column a trigger definition uses cannot change type.
DROP TRIGGER jobs_lock_enter_on_insert ON pgqueue.jobs;

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

INSERT INTO pgqueue.migrations (name) VALUES ('0024_column_domains');
