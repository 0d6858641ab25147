-- pgqueue 0006: the door. Every value a producer can write is one a worker can read back, by
-- the same limits as pgqueue/validation.py, so Python, the CLI and SQL refuse the same values
-- (docs/sql.md, "What a job may hold"):
--   run_at           0001-01-02 .. 9999-12-30 UTC: never +-infinity, and decodable as a Python
--                    datetime in every session time zone (every reader of a job decodes it)
--   max_attempts     1 .. 1,000,000
--   timeout_seconds  NULL, or more than 0 and at most a year: 'NaN' and 'Infinity' are float8
--                    values too, and either one broke pgqueue.stuck_jobs for everyone
-- task_name, queue, args and kwargs (an array and an object) and priority were bounded by 0001.
--
-- Nesting (at most 100 arrays/objects deep), integers of more than 4,300 digits (Python will not
-- decode them) and control characters in names are refused by pgqueue.enqueue() below, not by
-- the table: as CHECKs they cost more than a few percent. Every CHECK is prepared again by each
-- INSERT and UPDATE statement of pgqueue.jobs, claims and acknowledgements included, at about a
-- microsecond per operator or function. Measured with `python -m benchmarks.door_checks`
-- (server CPU): the three below add 3 us to a single-row INSERT statement (34 us before) and
-- +2 % to a 10,000-row COPY, within its noise; a nesting CHECK on args and kwargs would add
-- 9-13 us more per statement (+25-40 %) and 2-4 % more per COPY.

-- Rows already out of range are brought into it, without changing what they do: before year 1
-- is due now, after 9999 is never; a recorded timeout past a year is a year (NaN: none
-- recorded; the worker runs with the task's own timeout either way); more than a million
-- attempts is a million. One pass over the table, then one for the constraints' validation.
DO $$
DECLARE
    fixed bigint;
BEGIN
    UPDATE pgqueue.jobs
    SET run_at = CASE WHEN run_at < timestamptz '0001-01-02 00:00:00+00'
                      THEN timestamptz '0001-01-02 00:00:00+00'
                      WHEN run_at > timestamptz '9999-12-30 00:00:00+00'
                      THEN timestamptz '9999-12-30 00:00:00+00'
                      ELSE run_at END,
        timeout_seconds = CASE WHEN timeout_seconds = 'NaN' OR timeout_seconds <= 0 THEN NULL
                               WHEN timeout_seconds > 31536000 THEN 31536000
                               ELSE timeout_seconds END,
        max_attempts = least(max_attempts, 1000000)
    WHERE NOT run_at BETWEEN timestamptz '0001-01-02 00:00:00+00'
                         AND timestamptz '9999-12-30 00:00:00+00'
       OR NOT (timeout_seconds > 0 AND timeout_seconds <= 31536000)
       OR max_attempts > 1000000;
    GET DIAGNOSTICS fixed = ROW_COUNT;
    IF fixed > 0 THEN
        RAISE NOTICE 'pgqueue 0006: % jobs had run_at, timeout_seconds or max_attempts out of range; brought into range', fixed;
    END IF;
    UPDATE pgqueue.schedules SET max_attempts = 1000000 WHERE max_attempts > 1000000;
END;
$$;

-- Each CHECK costs about a microsecond per operator or function, paid by every statement: hence
-- one range containment each for run_at and max_attempts, not a pair of comparisons.
ALTER TABLE pgqueue.jobs
    DROP CONSTRAINT jobs_max_attempts_check,
    DROP CONSTRAINT jobs_timeout_seconds_check,
    ADD CONSTRAINT jobs_run_at_check CHECK (
        run_at <@ tstzrange '[0001-01-02 00:00:00+00, 9999-12-30 00:00:00+00]'),
    ADD CONSTRAINT jobs_max_attempts_check CHECK (max_attempts <@ int4range '[1, 1000000]'),
    ADD CONSTRAINT jobs_timeout_seconds_check CHECK (
        timeout_seconds > 0 AND timeout_seconds <= 31536000);
COMMENT ON CONSTRAINT jobs_run_at_check ON pgqueue.jobs IS
    'run_at between 0001-01-02 and 9999-12-30 UTC (never +-infinity): workers decode it as a Python datetime.';
COMMENT ON CONSTRAINT jobs_max_attempts_check ON pgqueue.jobs IS
    'max_attempts from 1 to 1,000,000 (pgqueue/validation.py MAX_ATTEMPTS).';
COMMENT ON CONSTRAINT jobs_timeout_seconds_check ON pgqueue.jobs IS
    'timeout_seconds NULL or in (0, 31536000]: never NaN or Infinity (pgqueue/validation.py MAX_TIMEOUT_SECONDS).';

-- Schedules fire jobs with their max_attempts: a bound the jobs table refuses would fail every
-- tick.
ALTER TABLE pgqueue.schedules
    DROP CONSTRAINT schedules_max_attempts_check,
    ADD CONSTRAINT schedules_max_attempts_check CHECK (max_attempts <@ int4range '[1, 1000000]');

-- pgqueue.enqueue() refuses, each with its own message, what the table leaves to it: args that
-- are neither an array nor an object (they were silently dropped), nesting past 100 levels,
-- integers past 4,300 digits and names with control characters. NULL args mean "no arguments".
CREATE OR REPLACE FUNCTION pgqueue.enqueue(
    task_name    text,
    args         jsonb DEFAULT '[]',
    queue        text DEFAULT 'default',
    priority     integer DEFAULT 0,
    run_at       timestamptz DEFAULT now(),
    max_attempts integer DEFAULT 3
) RETURNS bigint
LANGUAGE plpgsql AS $$
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
    INSERT INTO pgqueue.jobs (task_name, args, kwargs, queue, priority, run_at, max_attempts)
    VALUES (
        enqueue.task_name,
        CASE WHEN args_kind = 'array' THEN enqueue.args ELSE '[]' END,
        CASE WHEN args_kind = 'object' THEN enqueue.args ELSE '{}' END,
        enqueue.queue, enqueue.priority, enqueue.run_at, enqueue.max_attempts
    )
    RETURNING id INTO job_id;
    RETURN job_id;
END;
$$;
COMMENT ON FUNCTION pgqueue.enqueue(text, jsonb, text, integer, timestamptz, integer) IS
    'Enqueue a job from SQL: args is a JSON array (positional) or object (keyword arguments), NULL for none. Returns the job id. Refuses what no worker could run (docs/sql.md).';

INSERT INTO pgqueue.migrations (name) VALUES ('0006_door_checks');
