-- pgqueue 0008: the server connections of each worker, countable by a DBA.
--
-- Every connection a worker opens is named `pgqueue worker <name> <role>` (claim, ack, listen;
-- three per worker process). The worker records the stem of those names at registration, and
-- workers_overview counts the sessions of this database that carry it.

ALTER TABLE pgqueue.workers ADD COLUMN application_name text;
COMMENT ON COLUMN pgqueue.workers.application_name IS
    'The start of the application_name of its connections (`pgqueue worker <name>`), followed by a space and claim, ack or listen.';

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
       c.server_connections
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
COMMENT ON COLUMN pgqueue.workers_overview.server_connections IS
    'Sessions of this database named after the worker (`pgqueue worker <name> claim|ack|listen`): 3 for a healthy worker process (2 without LISTEN); NULL for a worker older than migration 0008.';

INSERT INTO pgqueue.migrations (name) VALUES ('0008_worker_connections');
