-- django-background-tasks compatibility: its Task and CompletedTask tables as views over
-- pgqueue.jobs, plus a side table for the columns pgqueue.jobs has no place for.
-- Applied by the Django migration pgqueue_background.0001_initial (not by `pgqueue migrate`:
-- only Django projects need it).

CREATE TABLE pgqueue_background_task_meta (
    job_id                  bigint PRIMARY KEY REFERENCES pgqueue.jobs (id) ON DELETE CASCADE,
    task_hash               varchar(40) NOT NULL DEFAULT '',
    verbose_name            varchar(255),
    repeat                  bigint NOT NULL DEFAULT 0,
    repeat_until            timestamptz,
    creator_content_type_id integer,
    creator_object_id       integer CHECK (creator_object_id >= 0)
);
COMMENT ON TABLE pgqueue_background_task_meta IS
    'django-background-tasks columns of a pgqueue job (verbose_name, creator, repeat, task_hash); deleted with the job.';
CREATE INDEX pgqueue_background_task_meta_hash_idx ON pgqueue_background_task_meta (task_hash);
CREATE INDEX pgqueue_background_task_meta_creator_idx
    ON pgqueue_background_task_meta (creator_content_type_id, creator_object_id);

-- Pending and running jobs, in django-background-tasks' Task shape.
CREATE VIEW pgqueue_background_task AS
SELECT j.id, j.task_name, jsonb_build_array(j.args, j.kwargs)::text AS task_params,
       coalesce(m.task_hash, '')::varchar(40) AS task_hash, m.verbose_name, j.priority,
       j.run_at, coalesce(m.repeat, 0) AS repeat, m.repeat_until, j.queue, j.attempts,
       NULL::timestamptz AS failed_at, coalesce(j.error_traceback, j.error_message, '') AS last_error,
       CASE WHEN j.state = 'running' THEN j.worker_id::text END AS locked_by,
       CASE WHEN j.state = 'running' THEN j.started_at END AS locked_at,
       m.creator_content_type_id, m.creator_object_id, j.state::text AS state, j.max_attempts
FROM pgqueue.jobs AS j
LEFT JOIN pgqueue_background_task_meta AS m ON m.job_id = j.id
WHERE j.state IN ('queued', 'running');

-- Finished jobs, in the shape of django-background-tasks' CompletedTask (run_at: when it ended).
CREATE VIEW pgqueue_background_completedtask AS
SELECT j.id, j.task_name, jsonb_build_array(j.args, j.kwargs)::text AS task_params,
       coalesce(m.task_hash, '')::varchar(40) AS task_hash, m.verbose_name, j.priority,
       coalesce(j.finished_at, j.run_at) AS run_at, coalesce(m.repeat, 0) AS repeat,
       m.repeat_until, j.queue, j.attempts,
       CASE WHEN j.state <> 'succeeded' THEN j.finished_at END AS failed_at,
       coalesce(j.error_traceback, j.error_message, '') AS last_error,
       NULL::text AS locked_by, NULL::timestamptz AS locked_at,
       m.creator_content_type_id, m.creator_object_id, j.state::text AS state, j.max_attempts
FROM pgqueue.jobs AS j
LEFT JOIN pgqueue_background_task_meta AS m ON m.job_id = j.id
WHERE j.state IN ('succeeded', 'failed', 'cancelled');

-- INSERT INTO the Task view enqueues a job: the INSERT into pgqueue.jobs fires its statement
-- trigger, whose NOTIFY wakes the workers when the transaction commits.
CREATE FUNCTION pgqueue_background_task_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    params jsonb := coalesce(nullif(NEW.task_params, ''), '[[], {}]')::jsonb;
BEGIN
    INSERT INTO pgqueue.jobs (task_name, queue, args, kwargs, priority, run_at, max_attempts)
    VALUES (NEW.task_name, coalesce(NEW.queue, 'default'), coalesce(params -> 0, '[]'),
            coalesce(params -> 1, '{}'), coalesce(NEW.priority, 0), coalesce(NEW.run_at, now()),
            coalesce(NEW.max_attempts, 25))
    RETURNING id, queue, run_at, attempts, state::text, max_attempts
    INTO NEW.id, NEW.queue, NEW.run_at, NEW.attempts, NEW.state, NEW.max_attempts;
    INSERT INTO pgqueue_background_task_meta (job_id, task_hash, verbose_name, repeat,
                                              repeat_until, creator_content_type_id,
                                              creator_object_id)
    VALUES (NEW.id, coalesce(NEW.task_hash, ''), NEW.verbose_name, coalesce(NEW.repeat, 0),
            NEW.repeat_until, NEW.creator_content_type_id, NEW.creator_object_id);
    NEW.task_params := jsonb_build_array(params -> 0, params -> 1)::text;
    RETURN NEW;
END;
$$;
CREATE TRIGGER pgqueue_background_task_insert
    INSTEAD OF INSERT ON pgqueue_background_task
    FOR EACH ROW EXECUTE FUNCTION pgqueue_background_task_insert();

-- UPDATE changes what the task is and when it runs; attempts, errors and locks stay the
-- worker's.
CREATE FUNCTION pgqueue_background_task_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    params jsonb := coalesce(nullif(NEW.task_params, ''), '[[], {}]')::jsonb;
BEGIN
    UPDATE pgqueue.jobs
    SET task_name = NEW.task_name, queue = coalesce(NEW.queue, 'default'),
        args = coalesce(params -> 0, '[]'), kwargs = coalesce(params -> 1, '{}'),
        priority = coalesce(NEW.priority, 0), run_at = coalesce(NEW.run_at, run_at),
        max_attempts = coalesce(NEW.max_attempts, max_attempts)
    WHERE id = OLD.id;
    INSERT INTO pgqueue_background_task_meta AS m (job_id, task_hash, verbose_name, repeat,
                                                   repeat_until, creator_content_type_id,
                                                   creator_object_id)
    VALUES (OLD.id, coalesce(NEW.task_hash, ''), NEW.verbose_name, coalesce(NEW.repeat, 0),
            NEW.repeat_until, NEW.creator_content_type_id, NEW.creator_object_id)
    ON CONFLICT (job_id) DO UPDATE
    SET task_hash = EXCLUDED.task_hash, verbose_name = EXCLUDED.verbose_name,
        repeat = EXCLUDED.repeat, repeat_until = EXCLUDED.repeat_until,
        creator_content_type_id = EXCLUDED.creator_content_type_id,
        creator_object_id = EXCLUDED.creator_object_id;
    RETURN NEW;
END;
$$;
CREATE TRIGGER pgqueue_background_task_update
    INSTEAD OF UPDATE ON pgqueue_background_task
    FOR EACH ROW EXECUTE FUNCTION pgqueue_background_task_update();

-- DELETE through either view deletes the job (its meta row goes with it).
CREATE FUNCTION pgqueue_background_task_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgqueue.jobs WHERE id = OLD.id;
    RETURN OLD;
END;
$$;
CREATE TRIGGER pgqueue_background_task_delete
    INSTEAD OF DELETE ON pgqueue_background_task
    FOR EACH ROW EXECUTE FUNCTION pgqueue_background_task_delete();
CREATE TRIGGER pgqueue_background_completedtask_delete
    INSTEAD OF DELETE ON pgqueue_background_completedtask
    FOR EACH ROW EXECUTE FUNCTION pgqueue_background_task_delete();
