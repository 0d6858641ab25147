-- pgqueue 0017: every failed attempt's error is kept, not only the last one.
--
-- error_type / error_message / error_traceback still hold the latest error (dashboards read
-- them); `errors` is the history: one JSON object per failed attempt, appended by the
-- acknowledgement that records the failure (retry_later, mark_failed) or by the rescue of a
-- job whose worker died. Appending costs nothing on the success path, which never touches it.
-- NULL (no error yet) rather than '[]': the column is added without rewriting the table.

ALTER TABLE pgqueue.jobs ADD COLUMN errors jsonb
    CONSTRAINT jobs_errors_check CHECK (jsonb_typeof(errors) = 'array');
COMMENT ON COLUMN pgqueue.jobs.errors IS
    'Every failed attempt''s error, oldest first: [{"attempt", "type", "message", "traceback", "worker_id", "worker", "at"}]; NULL until an attempt fails.';

-- The history entry for the attempt a worker (`worker_id`, the job's before the outcome clears
-- it) just failed; NULL type (pgqueue.Retry asked for a rerun) adds nothing.
CREATE FUNCTION pgqueue.with_attempt_error(
    errors jsonb, attempt integer, worker_id bigint, error_type text, error_message text,
    error_traceback text
) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT CASE WHEN error_type IS NULL THEN errors
           ELSE coalesce(errors, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
               'attempt', attempt, 'type', error_type, 'message', error_message,
               'traceback', error_traceback, 'worker_id', worker_id,
               'worker', (SELECT w.name FROM pgqueue.workers AS w WHERE w.id = worker_id),
               'at', now()))
           END
$$;
COMMENT ON FUNCTION pgqueue.with_attempt_error(jsonb, integer, bigint, text, text, text) IS
    'errors with one more failed attempt appended (unchanged when error_type is NULL).';

INSERT INTO pgqueue.migrations (name) VALUES ('0017_attempt_errors');
