-- django-background-tasks compatibility, second version: the views show only this door's
-- tasks, a task can be locked by name (Task.lock) and a lock saved through the model is kept,
-- attempts written through the model are kept, and CompletedTask rows can be created
-- (Task.create_completed_task). Applied by pgqueue_background.0002_library_semantics.

-- Who locked the task, when a program that is not a pgqueue worker did (Task.lock(name),
-- tasks.run_next_task()); a worker's claim is named by pgqueue.jobs.worker_id instead.
ALTER TABLE pgqueue_background_task_meta ADD COLUMN locked_by varchar(64);

DROP VIEW pgqueue_background_completedtask;
DROP VIEW pgqueue_background_task;

-- Unfinished tasks of this door (a job with a meta row), in django-background-tasks' Task
-- shape. A running task is locked: by its worker's id, or by the name it was locked with.
CREATE VIEW pgqueue_background_task AS
SELECT j.id, j.task_name, jsonb_build_array(j.args, j.kwargs)::text AS task_params,
       m.task_hash, m.verbose_name, j.priority, j.run_at, m.repeat, m.repeat_until, j.queue,
       j.attempts, NULL::timestamptz AS failed_at,
       coalesce(j.error_traceback, j.error_message, '') AS last_error,
       CASE WHEN j.state = 'running' THEN coalesce(j.worker_id::text, m.locked_by) END
           AS locked_by,
       CASE WHEN j.state = 'running' THEN j.started_at END AS locked_at,
       m.creator_content_type_id, m.creator_object_id, j.state::text AS state, j.max_attempts
FROM pgqueue.jobs AS j
JOIN pgqueue_background_task_meta AS m ON m.job_id = j.id
WHERE j.state NOT IN ('succeeded', 'failed', 'cancelled');

-- Finished tasks of this door, in the shape of django-background-tasks' CompletedTask
-- (run_at: when it ended; failed_at: set unless it succeeded).
CREATE VIEW pgqueue_background_completedtask AS
SELECT j.id, j.task_name, jsonb_build_array(j.args, j.kwargs)::text AS task_params,
       m.task_hash, m.verbose_name, j.priority, coalesce(j.finished_at, j.run_at) AS run_at,
       m.repeat, m.repeat_until, j.queue, j.attempts,
       CASE WHEN j.state <> 'succeeded' THEN j.finished_at END AS failed_at,
       coalesce(j.error_traceback, j.error_message, '') AS last_error,
       m.locked_by, CASE WHEN m.locked_by IS NOT NULL THEN j.started_at END AS locked_at,
       m.creator_content_type_id, m.creator_object_id, j.state::text AS state, j.max_attempts
FROM pgqueue.jobs AS j
JOIN pgqueue_background_task_meta AS m ON m.job_id = j.id
WHERE j.state IN ('succeeded', 'failed', 'cancelled');

-- task_params as the triggers store it: [args, kwargs], args an array and kwargs an object
-- ("" or NULL: no arguments). Anything else is refused with a message that says so, instead of
-- the jobs table's bare check violation.
CREATE FUNCTION pgqueue_background_params(task_params text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    params jsonb := coalesce(nullif(task_params, ''), '[[], {}]')::jsonb;
BEGIN
    IF jsonb_typeof(params) <> 'array'
            OR jsonb_typeof(coalesce(params -> 0, '[]')) <> 'array'
            OR jsonb_typeof(coalesce(params -> 1, '{}')) <> 'object' THEN
        RAISE EXCEPTION 'task_params must be a JSON array [args, kwargs] (args an array, kwargs an object), not %', task_params
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN jsonb_build_array(coalesce(params -> 0, '[]'), coalesce(params -> 1, '{}'));
END;
$$;

-- The meta row of a task, written by the INSERT and UPDATE triggers of both views.
CREATE FUNCTION pgqueue_background_save_meta(job_id bigint, task record) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgqueue_background_task_meta AS m
        (job_id, task_hash, verbose_name, repeat, repeat_until, creator_content_type_id,
         creator_object_id, locked_by)
    VALUES (job_id, coalesce(task.task_hash, ''), task.verbose_name, coalesce(task.repeat, 0),
            task.repeat_until, task.creator_content_type_id, task.creator_object_id,
            nullif(task.locked_by, ''))
    ON CONFLICT ON CONSTRAINT pgqueue_background_task_meta_pkey DO UPDATE
    SET task_hash = EXCLUDED.task_hash, verbose_name = EXCLUDED.verbose_name,
        repeat = EXCLUDED.repeat, repeat_until = EXCLUDED.repeat_until,
        creator_content_type_id = EXCLUDED.creator_content_type_id,
        creator_object_id = EXCLUDED.creator_object_id, locked_by = EXCLUDED.locked_by;
END;
$$;

-- INSERT INTO the Task view enqueues a job: the INSERT into pgqueue.jobs fires its statement
-- trigger, whose NOTIFY wakes the workers when the transaction commits.
CREATE OR REPLACE FUNCTION pgqueue_background_task_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    params jsonb := pgqueue_background_params(NEW.task_params);
BEGIN
    INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts)
    VALUES (NEW.task_name, coalesce(NEW.queue, 'default'), params -> 0,
            params -> 1, coalesce(NEW.priority, 0), coalesce(NEW.run_at, now()),
            coalesce(NEW.max_attempts, 25))
    RETURNING id, queue, run_at, attempts, state::text, max_attempts
    INTO NEW.id, NEW.queue, NEW.run_at, NEW.attempts, NEW.state, NEW.max_attempts;
    NEW.locked_by := NULL;  -- a new task is not locked; Task.lock() locks it
    PERFORM pgqueue_background_save_meta(NEW.id, NEW);
    NEW.task_params := params::text;
    RETURN NEW;
END;
$$;

-- UPDATE writes what the task is, when it runs, its attempts and its lock, as the library's
-- model saves them: a lock saved with a holder makes the job running (locked_at is when it
-- started; a new holder gets a new claim token, so the old one's outcome is refused), a lock
-- saved empty puts it back to queued. The outcome of an attempt is the worker's (or
-- tasks.run_task's) to record.
CREATE OR REPLACE FUNCTION pgqueue_background_task_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    params jsonb := pgqueue_background_params(NEW.task_params);
    holder text := nullif(NEW.locked_by, '');
    lock_changed boolean := holder IS DISTINCT FROM OLD.locked_by
                            OR NEW.locked_at IS DISTINCT FROM OLD.locked_at;
BEGIN
    UPDATE pgqueue.jobs AS j
    SET task_name = NEW.task_name, queue = coalesce(NEW.queue, 'default'),
        args = params -> 0, kwargs = params -> 1,
        priority = coalesce(NEW.priority, 0), run_at = coalesce(NEW.run_at, j.run_at),
        max_attempts = coalesce(NEW.max_attempts, j.max_attempts),
        attempts = coalesce(NEW.attempts, j.attempts),
        state = CASE WHEN NOT lock_changed THEN j.state
                     WHEN holder IS NULL THEN 'queued'
                     ELSE 'running' END::pgqueue.job_state,
        started_at = CASE WHEN lock_changed AND holder IS NOT NULL
                          THEN coalesce(NEW.locked_at, now()) ELSE j.started_at END,
        claim_token = CASE WHEN NOT lock_changed THEN j.claim_token
                           WHEN holder IS NULL THEN NULL
                           WHEN holder IS DISTINCT FROM OLD.locked_by THEN gen_random_uuid()
                           ELSE j.claim_token END,
        worker_id = CASE WHEN lock_changed AND holder IS DISTINCT FROM OLD.locked_by
                         THEN NULL ELSE j.worker_id END
    WHERE j.id = OLD.id;
    IF holder IS DISTINCT FROM OLD.locked_by THEN
        NEW.locked_by := holder;
    ELSE
        -- Unchanged: a worker's lock is named by its id, which the meta row does not keep.
        NEW.locked_by := (SELECT m.locked_by FROM pgqueue_background_task_meta AS m
                          WHERE m.job_id = OLD.id);
    END IF;
    PERFORM pgqueue_background_save_meta(OLD.id, NEW);
    NEW.locked_by := holder;
    RETURN NEW;
END;
$$;

-- INSERT INTO the CompletedTask view records a finished task (Task.create_completed_task()):
-- a job that is already succeeded (or failed, when failed_at is set), with its own meta row.
CREATE FUNCTION pgqueue_background_completedtask_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    params jsonb := pgqueue_background_params(NEW.task_params);
    finished timestamptz := coalesce(NEW.failed_at, NEW.run_at, now());
BEGIN
    INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts,
                              state, attempts, enqueued_at, started_at, finished_at,
                              error_type, error_traceback, result)
    VALUES (NEW.task_name, coalesce(NEW.queue, 'default'), params -> 0,
            params -> 1, coalesce(NEW.priority, 0), finished,
            greatest(coalesce(NEW.max_attempts, NEW.attempts, 1), NEW.attempts, 1),
            CASE WHEN NEW.failed_at IS NULL THEN 'succeeded' ELSE 'failed' END::pgqueue.job_state,
            coalesce(NEW.attempts, 0), finished, coalesce(NEW.locked_at, finished), finished,
            CASE WHEN nullif(NEW.last_error, '') IS NOT NULL THEN 'BackgroundTaskError' END,
            nullif(NEW.last_error, ''),
            CASE WHEN NEW.failed_at IS NULL THEN 'null'::jsonb END)
    RETURNING id, run_at, state::text, max_attempts
    INTO NEW.id, NEW.run_at, NEW.state, NEW.max_attempts;
    PERFORM pgqueue_background_save_meta(NEW.id, NEW);
    RETURN NEW;
END;
$$;

CREATE TRIGGER pgqueue_background_task_insert
    INSTEAD OF INSERT ON pgqueue_background_task
    FOR EACH ROW EXECUTE FUNCTION pgqueue_background_task_insert();
CREATE TRIGGER pgqueue_background_task_update
    INSTEAD OF UPDATE ON pgqueue_background_task
    FOR EACH ROW EXECUTE FUNCTION pgqueue_background_task_update();
CREATE TRIGGER pgqueue_background_task_delete
    INSTEAD OF DELETE ON pgqueue_background_task
    FOR EACH ROW EXECUTE FUNCTION pgqueue_background_task_delete();
CREATE TRIGGER pgqueue_background_completedtask_insert
    INSTEAD OF INSERT ON pgqueue_background_completedtask
    FOR EACH ROW EXECUTE FUNCTION pgqueue_background_completedtask_insert();
CREATE TRIGGER pgqueue_background_completedtask_delete
    INSTEAD OF DELETE ON pgqueue_background_completedtask
    FOR EACH ROW EXECUTE FUNCTION pgqueue_background_task_delete();
