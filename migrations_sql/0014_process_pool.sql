-- pgqueue 0014: the child processes of process-pool workers (`pgqueue worker --pool process`),
-- for a DBA, `pgqueue top` and the admin.
--
-- A worker records its pool at registration and, at every heartbeat, its children as they are
-- then (pid, the job each runs, resident memory, jobs run, start time): at most one heartbeat
-- interval old, and written by the same UPDATE as the heartbeat (no index covers the column, so
-- it stays a HOT update).

ALTER TABLE pgqueue.workers
    ADD COLUMN pool text NOT NULL DEFAULT 'thread',
    ADD COLUMN children jsonb;
COMMENT ON COLUMN pgqueue.workers.pool IS
    'Where its plain-function tasks run: thread, or process (child processes; a task may override it).';
COMMENT ON COLUMN pgqueue.workers.children IS
    'Its child processes at its last heartbeat: [{pid, job_id, rss_bytes, jobs_run, started_at (epoch seconds)}]; NULL: none.';

CREATE OR REPLACE VIEW pgqueue.workers_overview AS
SELECT w.id,
       w.name,
       w.hostname,
       w.pid,
       w.queues,
       w.concurrency,
       (w.last_heartbeat_at >= now() - make_interval(secs => pgqueue.setting_seconds('heartbeat_timeout', 30)))
           AS alive,
       CASE WHEN isfinite(w.last_heartbeat_at)
            THEN round(extract(epoch FROM now() - w.last_heartbeat_at), 3)::float8
       END AS heartbeat_age_seconds,
       w.started_at,
       round(extract(epoch FROM now() - w.started_at), 3)::float8 AS uptime_seconds,
       coalesce(r.running_jobs, 0) AS running_jobs,
       r.running_job_ids,
       r.running_tasks,
       r.longest_running_seconds,
       c.server_connections,
       w.pool,
       coalesce(jsonb_array_length(w.children), 0) AS child_processes,
       (SELECT sum((child ->> 'rss_bytes')::bigint)
        FROM jsonb_array_elements(w.children) AS child)::bigint AS children_rss_bytes
FROM pgqueue.workers w
LEFT JOIN LATERAL (
    SELECT count(*) AS running_jobs,
           array_agg(j.id ORDER BY j.id) AS running_job_ids,
           array_agg(DISTINCT j.task_name) AS running_tasks,
           round(extract(epoch FROM now() - min(j.started_at)), 3)::float8 AS longest_running_seconds
    FROM pgqueue.jobs j
    WHERE j.worker_id = w.id AND j.state = 'running'
) r ON true
LEFT JOIN LATERAL (
    SELECT count(*)::int AS server_connections
    FROM pg_stat_activity a
    WHERE a.datname = current_database()
      AND left(a.application_name, length(w.application_name) + 1) = w.application_name || ' '
) c ON w.application_name IS NOT NULL
ORDER BY alive DESC, w.id;
COMMENT ON COLUMN pgqueue.workers_overview.pool IS 'thread or process (`pgqueue worker --pool`).';
COMMENT ON COLUMN pgqueue.workers_overview.child_processes IS
    'Child processes at its last heartbeat (0: none; a thread-pool worker starts some for tasks declared pool="process").';
COMMENT ON COLUMN pgqueue.workers_overview.children_rss_bytes IS
    'Resident memory of its child processes together, at its last heartbeat (NULL: none).';

CREATE VIEW pgqueue.worker_children AS
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
           AS alive
FROM pgqueue.workers w
CROSS JOIN LATERAL jsonb_array_elements(w.children) AS child
LEFT JOIN pgqueue.jobs j
       ON j.id = (child ->> 'job_id')::bigint AND j.state = 'running' AND j.worker_id = w.id
ORDER BY w.id, pid;
COMMENT ON VIEW pgqueue.worker_children IS
    'One row per child process of a worker, as of its last heartbeat: the job it runs (NULL: idle), the task, its resident memory and how many jobs it has run (`pgqueue worker --pool process`, --max-tasks-per-child, --max-memory-per-child).';
COMMENT ON COLUMN pgqueue.worker_children.job_id IS 'The job it was running at the heartbeat (NULL: idle).';
COMMENT ON COLUMN pgqueue.worker_children.task_name IS 'Task of that job, while the job still runs on this worker.';
COMMENT ON COLUMN pgqueue.worker_children.rss_bytes IS 'Resident memory (Linux /proc; elsewhere the peak after its last job).';
COMMENT ON COLUMN pgqueue.worker_children.jobs_run IS 'Jobs it has finished; --max-tasks-per-child replaces it at that many.';
COMMENT ON COLUMN pgqueue.worker_children.alive IS 'Its worker is alive (heartbeat within pgqueue.heartbeat_timeout).';

INSERT INTO pgqueue.migrations (name) VALUES ('0014_process_pool');
