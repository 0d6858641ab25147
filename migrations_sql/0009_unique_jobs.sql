-- pgqueue 0009: unique jobs.
--
-- A job may carry a unique_key: at most one job with that key is queued or running at a time,
-- enforced by a unique partial index (not a check-then-insert, which two producers could both
-- pass). Enqueueing a duplicate returns the job that holds the key (or, asked to, raises).
-- Once that job has finished (succeeded, failed or cancelled), the key is free again and a new
-- job may take it; an operator retry of the old job then fails while the new one holds the key.

ALTER TABLE pgqueue.jobs ADD COLUMN unique_key text
    CONSTRAINT jobs_unique_key_check CHECK (length(unique_key) BETWEEN 1 AND 500);
COMMENT ON COLUMN pgqueue.jobs.unique_key IS
    'At most one queued or running job holds a given key (jobs_unique_key_idx); NULL: not unique.';

CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('queued', 'running');

DROP FUNCTION pgqueue.enqueue(text, jsonb, text, integer, timestamptz, integer);
CREATE FUNCTION pgqueue.enqueue(
    task_name    text,
    args         jsonb DEFAULT '[]',
    queue        text DEFAULT 'default',
    priority     integer DEFAULT 0,
    run_at       timestamptz DEFAULT now(),
    max_attempts integer DEFAULT 3,
    unique_key   text DEFAULT NULL
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
                                  max_attempts, unique_key)
        VALUES (
            enqueue.task_name,
            CASE WHEN args_kind = 'array' THEN enqueue.args ELSE '[]' END,
            CASE WHEN args_kind = 'object' THEN enqueue.args ELSE '{}' END,
            enqueue.queue, enqueue.priority, enqueue.run_at, enqueue.max_attempts,
            enqueue.unique_key
        )
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('queued', 'running')
        DO NOTHING
        RETURNING id INTO job_id;
        IF job_id IS NULL THEN
            SELECT j.id INTO job_id FROM pgqueue.jobs AS j
            WHERE j.unique_key = enqueue.unique_key AND j.state IN ('queued', 'running');
        END IF;
        IF job_id IS NOT NULL THEN
            RETURN job_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'pgqueue.enqueue: unique key % kept changing hands; try again', enqueue.unique_key
        USING ERRCODE = 'serialization_failure';
END;
$$;
COMMENT ON FUNCTION pgqueue.enqueue(text, jsonb, text, integer, timestamptz, integer, text) IS
    'Enqueue a job from SQL: args is a JSON array (positional) or object (keyword arguments), NULL for none. With unique_key, returns the queued or running job holding that key instead of adding another. Returns the job id. Refuses what no worker could run (docs/sql.md).';

INSERT INTO pgqueue.migrations (name) VALUES ('0009_unique_jobs');
