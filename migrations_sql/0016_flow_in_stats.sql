-- pgqueue 0016: why jobs are not starting, where people already look.
--
-- pgqueue.queue_flow also names the per-key limit (every due job's key already runs
-- per_key_concurrency jobs), and pgqueue.queue_stats (read by `pgqueue stats`, `pgqueue top`
-- and the Django admin) gains the flow columns: jobs waiting on a lock, the queue's limits,
-- starts in the rate window, and held_back_by. Queues that only have limits get a row too.

CREATE OR REPLACE VIEW pgqueue.queue_flow AS
WITH jobs_by_queue AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS due,
           count(*) FILTER (WHERE state::text = 'waiting') AS waiting_on_lock,
           count(*) FILTER (WHERE state = 'running') AS running
    FROM pgqueue.jobs
    WHERE state NOT IN ('succeeded', 'failed', 'cancelled')
    GROUP BY queue
), queues AS (
    SELECT queue FROM jobs_by_queue
    UNION SELECT queue FROM pgqueue.queue_limits
    UNION SELECT queue FROM pgqueue.paused_queues
)
SELECT q.queue,
       coalesce(j.due, 0) AS due,
       coalesce(j.running, 0) AS running,
       l.concurrency,
       l.per_key_concurrency,
       CASE WHEN l.rate_limit IS NOT NULL
            THEN l.rate_limit || ' per ' || l.rate_period END AS rate_limit,
       CASE WHEN l.rate_limit IS NOT NULL
            THEN (SELECT count(*) FROM unnest(l.recent_starts) AS s(started)
                  WHERE s.started > now() - l.rate_period) END AS started_in_rate_window,
       coalesce(j.waiting_on_lock, 0) AS waiting_on_lock,
       p.queue IS NOT NULL AS paused,
       CASE WHEN coalesce(j.due, 0) = 0 THEN NULL
            WHEN p.queue IS NOT NULL THEN 'paused'
            WHEN l.concurrency IS NOT NULL AND coalesce(j.running, 0) >= l.concurrency
                THEN 'concurrency limit reached'
            WHEN l.rate_limit IS NOT NULL AND (
                SELECT count(*) FROM unnest(l.recent_starts) AS s(started)
                WHERE s.started > now() - l.rate_period) >= l.rate_limit
                THEN 'rate limit reached'
            WHEN l.per_key_concurrency IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM pgqueue.jobs AS d
                WHERE d.state = 'queued' AND d.queue = q.queue AND d.run_at <= now()
                  AND (d.concurrency_key IS NULL OR (
                      SELECT count(*) FROM pgqueue.jobs AS r
                      WHERE r.state = 'running' AND r.queue = q.queue
                        AND r.concurrency_key = d.concurrency_key) < l.per_key_concurrency))
                THEN 'per-key limit reached'
       END AS held_back_by
FROM queues AS q
LEFT JOIN jobs_by_queue AS j ON j.queue = q.queue
LEFT JOIN pgqueue.queue_limits AS l ON l.queue = q.queue
LEFT JOIN pgqueue.paused_queues AS p ON p.queue = q.queue
ORDER BY q.queue;
COMMENT ON COLUMN pgqueue.queue_flow.held_back_by IS
    'Why due jobs are not starting: paused, concurrency limit reached, rate limit reached, per-key limit reached (every due job''s key is at per_key_concurrency); NULL: nothing holds them.';

CREATE OR REPLACE VIEW pgqueue.queue_stats AS
WITH depth AS (
    SELECT queue,
           count(*) FILTER (WHERE state = 'queued') AS queued,
           count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS due,
           count(*) FILTER (WHERE state = 'queued' AND run_at > now()) AS scheduled,
           count(*) FILTER (WHERE state = 'running') AS running,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
           min(run_at) FILTER (WHERE state = 'queued' AND run_at <= now()) AS oldest_due_at
    FROM pgqueue.jobs
    GROUP BY queue
), recent_waits AS (
    -- state <> 'queued' and started_at >= run_at leave out the stale started_at a job keeps
    -- from an earlier attempt while it waits for its next one.
    SELECT queue,
           count(*) AS started_5m,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - run_at))
               AS wait_p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - run_at))
               AS wait_p95
    FROM pgqueue.jobs
    WHERE started_at >= now() - interval '5 minutes'
      AND state <> 'queued'
      AND started_at >= run_at
    GROUP BY queue
), queues AS (
    SELECT queue FROM depth
    UNION
    SELECT queue FROM pgqueue.paused_queues
    UNION
    SELECT queue FROM pgqueue.queue_limits
)
SELECT q.queue,
       (p.queue IS NOT NULL) AS paused,
       coalesce(d.queued, 0) AS queued,
       coalesce(d.due, 0) AS due,
       coalesce(d.scheduled, 0) AS scheduled,
       coalesce(d.running, 0) AS running,
       coalesce(d.succeeded, 0) AS succeeded,
       coalesce(d.failed, 0) AS failed,
       coalesce(d.cancelled, 0) AS cancelled,
       round(extract(epoch FROM now() - d.oldest_due_at), 3)::float8 AS oldest_waiting_seconds,
       coalesce(w.started_5m, 0) AS started_5m,
       round(w.wait_p50::numeric, 3)::float8 AS wait_p50_seconds,
       round(w.wait_p95::numeric, 3)::float8 AS wait_p95_seconds,
       coalesce(f.waiting_on_lock, 0) AS waiting_on_lock,
       f.concurrency,
       f.per_key_concurrency,
       f.rate_limit,
       f.started_in_rate_window,
       f.held_back_by
FROM queues q
LEFT JOIN depth d ON d.queue = q.queue
LEFT JOIN recent_waits w ON w.queue = q.queue
LEFT JOIN pgqueue.paused_queues p ON p.queue = q.queue
LEFT JOIN pgqueue.queue_flow f ON f.queue = q.queue
ORDER BY q.queue;
COMMENT ON COLUMN pgqueue.queue_stats.waiting_on_lock IS 'Jobs in state waiting: behind an unfinished job of the same lock.';
COMMENT ON COLUMN pgqueue.queue_stats.concurrency IS 'The queue''s concurrency limit (NULL: none); compare with running.';
COMMENT ON COLUMN pgqueue.queue_stats.rate_limit IS 'The queue''s rate limit, e.g. 100 per 00:01:00 (NULL: none); compare with started_in_rate_window.';
COMMENT ON COLUMN pgqueue.queue_stats.held_back_by IS 'Why due jobs are not starting (see pgqueue.queue_flow.held_back_by); NULL: nothing holds them.';

-- queue_overview (0013, the admin's queue page) read queue_flow beside queue_stats; queue_stats
-- carries the flow columns now (every queue with limits has a row), so it reads them from there
-- and scans the jobs table once less.
CREATE OR REPLACE VIEW pgqueue.queue_overview AS
SELECT coalesce(s.queue, l.queue) AS queue,
       (p.queue IS NOT NULL) AS paused,
       coalesce(s.queued, 0) AS queued,
       coalesce(s.due, 0) AS due,
       coalesce(s.scheduled, 0) AS scheduled,
       coalesce(s.waiting_on_lock, 0) AS waiting_on_lock,
       coalesce(s.running, 0) AS running,
       coalesce(s.succeeded, 0) AS succeeded,
       coalesce(s.failed, 0) AS failed,
       coalesce(s.cancelled, 0) AS cancelled,
       s.oldest_waiting_seconds,
       coalesce(s.started_5m, 0) AS started_5m,
       s.wait_p50_seconds,
       s.wait_p95_seconds,
       l.concurrency,
       l.per_key_concurrency,
       CASE WHEN l.rate_limit IS NOT NULL
            THEN l.rate_limit || '/' || CASE l.rate_period WHEN interval '1 second' THEN 's'
                                         WHEN interval '1 minute' THEN 'm'
                                         WHEN interval '1 hour' THEN 'h' ELSE 'd' END
       END AS rate_limit,
       s.started_in_rate_window,
       s.held_back_by,
       l.set_by AS limits_set_by,
       p.paused_at,
       p.paused_by,
       p.reason AS paused_reason
FROM pgqueue.queue_stats AS s
FULL JOIN pgqueue.queue_limits AS l ON l.queue = s.queue
LEFT JOIN pgqueue.paused_queues AS p ON p.queue = coalesce(s.queue, l.queue)
ORDER BY 1;

INSERT INTO pgqueue.migrations (name) VALUES ('0016_flow_in_stats');
