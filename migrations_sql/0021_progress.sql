-- pgqueue 0021: progress and metadata of running jobs (context.set_progress / set_meta).
--
-- A task's reports are coalesced in its worker and written at most once per progress interval
-- for all its running jobs together (one UPDATE, pgqueue/sql/queries.sql set_progress), and once
-- more in the acknowledgement's transaction, so the last value is never lost. The columns are
-- indexed by nothing: such an update is a HOT update of the row, touching no index. No CHECK
-- either: Postgres prepares every CHECK of the table again for each INSERT and UPDATE, claims
-- and acknowledgements included (docs/sql.md, "What a job may hold"); only the worker role
-- writes these columns, with values pgqueue/progress.py checked in the task.

ALTER TABLE pgqueue.jobs
    ADD COLUMN progress float8,
    ADD COLUMN progress_message text,
    ADD COLUMN progress_at timestamptz,
    ADD COLUMN meta jsonb;
COMMENT ON COLUMN pgqueue.jobs.progress IS 'The latest fraction done (0 to 1) a task reported with context.set_progress; NULL: none reported.';
COMMENT ON COLUMN pgqueue.jobs.progress_message IS 'The message reported with that fraction (NULL: none).';
COMMENT ON COLUMN pgqueue.jobs.progress_at IS 'When the worker last wrote progress or meta (reports are coalesced: at most one write per job per progress interval).';
COMMENT ON COLUMN pgqueue.jobs.meta IS 'Key-value metadata a task set with context.set_meta (merged key by key, across attempts).';

-- Running jobs with their progress, for people (`pgqueue top`) and for the observer role, which
-- reads no arguments or results.
CREATE VIEW pgqueue.running_jobs AS
SELECT j.id,
       j.queue,
       j.task_name,
       j.worker_id,
       w.name AS worker_name,
       j.attempts,
       j.max_attempts,
       j.started_at,
       round(extract(epoch FROM now() - j.started_at), 3)::float8 AS running_seconds,
       j.progress,
       j.progress_message,
       j.progress_at,
       j.abort_requested
FROM pgqueue.jobs j
LEFT JOIN pgqueue.workers w ON w.id = j.worker_id
WHERE j.state = 'running'
ORDER BY j.started_at;
COMMENT ON VIEW pgqueue.running_jobs IS
    'Every running job, oldest attempt first: its worker, run time and latest reported progress (context.set_progress).';
COMMENT ON COLUMN pgqueue.running_jobs.progress IS 'Fraction done (0 to 1) last reported; NULL: the task reports none.';
COMMENT ON COLUMN pgqueue.running_jobs.progress_at IS 'When that progress was written (at most one progress interval behind the task).';

-- stuck_jobs and worker_children list running jobs too: they show the progress, so a job
-- stuck at 40% for an hour reads differently from one at 0%.
CREATE OR REPLACE VIEW pgqueue.stuck_jobs AS
SELECT j.id,
       j.queue,
       j.task_name,
       CASE WHEN w.id IS NULL THEN 'worker_missing'
            WHEN w.last_heartbeat_at < now() - make_interval(secs => s.heartbeat_timeout)
                THEN 'worker_dead'
            ELSE 'timeout_exceeded'
       END AS reason,
       j.worker_id,
       w.name AS worker_name,
       w.hostname AS worker_hostname,
       w.pid AS worker_pid,
       CASE WHEN isfinite(w.last_heartbeat_at)
            THEN round(extract(epoch FROM now() - w.last_heartbeat_at), 3)::float8
       END AS heartbeat_age_seconds,
       j.started_at,
       round(extract(epoch FROM now() - j.started_at), 3)::float8 AS running_seconds,
       coalesce(j.timeout_seconds, s.stuck_after) AS limit_seconds,
       j.attempts,
       j.max_attempts,
       j.abort_requested,
       j.progress,
       j.progress_message,
       j.progress_at
FROM pgqueue.jobs j
CROSS JOIN LATERAL (
    SELECT pgqueue.setting_seconds('heartbeat_timeout', 30) AS heartbeat_timeout,
           pgqueue.setting_seconds('stuck_after', 3600) AS stuck_after
) s
LEFT JOIN pgqueue.workers w ON w.id = j.worker_id
WHERE j.state = 'running'
  AND (w.id IS NULL
       OR w.last_heartbeat_at < now() - make_interval(secs => s.heartbeat_timeout)
       OR j.started_at < now() - make_interval(secs => coalesce(j.timeout_seconds, s.stuck_after)))
ORDER BY j.started_at;
COMMENT ON COLUMN pgqueue.stuck_jobs.progress IS 'Fraction done last reported (NULL: none); progress_at says when.';

CREATE OR REPLACE VIEW pgqueue.worker_children AS
SELECT w.id AS worker_id,
       w.name AS worker_name,
       w.hostname,
       (child ->> 'pid')::int AS pid,
       (child ->> 'job_id')::bigint AS job_id,
       j.task_name,
       CASE WHEN j.id IS NOT NULL
            THEN round(extract(epoch FROM now() - j.started_at), 3)::float8 END AS job_running_seconds,
       (child ->> 'rss_bytes')::bigint AS rss_bytes,
       (child ->> 'jobs_run')::int AS jobs_run,
       to_timestamp((child ->> 'started_at')::float8) AS started_at,
       round(extract(epoch FROM now() - to_timestamp((child ->> 'started_at')::float8)), 3)::float8
           AS uptime_seconds,
       (w.last_heartbeat_at >= now() - make_interval(secs => pgqueue.setting_seconds('heartbeat_timeout', 30)))
           AS alive,
       j.progress AS job_progress
FROM pgqueue.workers w
CROSS JOIN LATERAL jsonb_array_elements(w.children) AS child
LEFT JOIN pgqueue.jobs j
       ON j.id = (child ->> 'job_id')::bigint AND j.state = 'running' AND j.worker_id = w.id
ORDER BY w.id, pid;
COMMENT ON COLUMN pgqueue.worker_children.job_progress IS 'Fraction done its job last reported (NULL: none, or idle).';

INSERT INTO pgqueue.migrations (name) VALUES ('0021_progress');
