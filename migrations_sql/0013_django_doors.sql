-- pgqueue 0013: one row per queue with everything an operator steers it by, for the Django
-- admin's queue page (and a DBA's psql): depth by state and recent waits (pgqueue.queue_stats),
-- limits and what holds due jobs back (pgqueue.queue_flow), who set the limits, and why the
-- queue is paused. A queue appears when it has jobs, limits, or is paused.

-- queue_stats is read once (it scans the whole jobs table); queue_flow reads unfinished jobs.
CREATE VIEW pgqueue.queue_overview AS
SELECT coalesce(s.queue, l.queue) AS queue,
       (p.queue IS NOT NULL) AS paused,
       coalesce(s.queued, 0) AS queued,
       coalesce(s.due, 0) AS due,
       coalesce(s.scheduled, 0) AS scheduled,
       coalesce(f.waiting_on_lock, 0) AS waiting_on_lock,
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
       f.started_in_rate_window,
       f.held_back_by,
       l.set_by AS limits_set_by,
       p.paused_at,
       p.paused_by,
       p.reason AS paused_reason
FROM pgqueue.queue_stats AS s
FULL JOIN pgqueue.queue_limits AS l ON l.queue = s.queue
LEFT JOIN pgqueue.queue_flow AS f ON f.queue = coalesce(s.queue, l.queue)
LEFT JOIN pgqueue.paused_queues AS p ON p.queue = coalesce(s.queue, l.queue)
ORDER BY 1;
COMMENT ON VIEW pgqueue.queue_overview IS
    'One row per queue (with jobs, limits, or paused): depth by state, jobs waiting on a lock, oldest wait and p50/p95 wait of the last 5 minutes, limits as pgqueue.set_queue_limit() takes them (rate_limit ''100/m''), what holds due jobs back, who set the limits and who paused it. Reads the whole jobs table, like queue_stats.';
COMMENT ON COLUMN pgqueue.queue_overview.rate_limit IS
    'At most N starts per period, spelled as set: 10/s, 100/m, 1000/h, 5/d.';
COMMENT ON COLUMN pgqueue.queue_overview.limits_set_by IS
    'code (App.queue(), rewritten at worker start) or operator (stands until reset).';

INSERT INTO pgqueue.migrations (name) VALUES ('0013_django_doors');
