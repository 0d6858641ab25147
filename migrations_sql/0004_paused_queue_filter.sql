-- pgqueue 0004: how the claim skips paused queues without losing its O(batch) index scan.
--
-- Written as NOT EXISTS (or as queue <> ALL(...)), the filter is estimated from the queue
-- column's statistics: with one busy queue Postgres expects ~0 rows to pass, prefers to sort
-- every queued row, and the claim becomes O(queued) (20 ms at 40k queued instead of 0.5 ms).
-- A PL/pgSQL function is opaque to the planner (default selectivity), so the claim keeps
-- walking jobs_claim_order_idx and stops after the batch; the function itself is a primary-key
-- probe of a tiny table.

CREATE FUNCTION pgqueue.queue_is_paused(queue_name text) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM pgqueue.paused_queues p WHERE p.queue = queue_name);
END;
$$;
COMMENT ON FUNCTION pgqueue.queue_is_paused(text) IS
    'True if workers must not claim from this queue (see pgqueue.pause_queue).';

INSERT INTO pgqueue.migrations (name) VALUES ('0004_paused_queue_filter');
