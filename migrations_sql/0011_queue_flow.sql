-- pgqueue 0011: why jobs are not starting, per queue, for a DBA.
--
-- One row per queue that has unfinished jobs or limits: what runs against each limit, what
-- waits behind a lock, and the first reason its due jobs are held back (NULL: none; they start
-- as soon as a worker of the queue has a free slot).

CREATE VIEW pgqueue.queue_flow AS
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
       END AS held_back_by
FROM queues AS q
LEFT JOIN jobs_by_queue AS j ON j.queue = q.queue
LEFT JOIN pgqueue.queue_limits AS l ON l.queue = q.queue
LEFT JOIN pgqueue.paused_queues AS p ON p.queue = q.queue
ORDER BY q.queue;
COMMENT ON VIEW pgqueue.queue_flow IS
    'Per queue: due, running against its limits (concurrency, per-key, rate), jobs waiting behind a lock, and why its due jobs are held back (held_back_by: paused, concurrency limit reached, rate limit reached; NULL: nothing holds them).';
COMMENT ON COLUMN pgqueue.queue_flow.waiting_on_lock IS
    'Jobs in state waiting: behind an unfinished job of the same lock (pgqueue.jobs.lock).';

INSERT INTO pgqueue.migrations (name) VALUES ('0011_queue_flow');
