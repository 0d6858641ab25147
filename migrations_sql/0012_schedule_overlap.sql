-- pgqueue 0012: periodic schedules that never overlap themselves (overlap = false).
--
-- A slow periodic job would otherwise pile up a new job every tick. With overlap = false the
-- scheduler that holds the schedule's row lock (pgqueue/periodic/scheduler.py) looks at the job
-- of the schedule's latest tick (last_job_id): while it is queued (due, scheduled or waiting to
-- retry), waiting on a lock or running, the tick is skipped and counted; once it has ended the
-- next tick enqueues as usual. Ticks due together (a catch-up) enqueue only the newest one.

ALTER TABLE pgqueue.schedules
    ADD COLUMN overlap boolean NOT NULL DEFAULT true,
    ADD COLUMN overlap_skipped_ticks bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN pgqueue.schedules.overlap IS
    'false: a tick is skipped while the job of the previous tick is queued, waiting or running (no pile-up behind a slow job).';
COMMENT ON COLUMN pgqueue.schedules.overlap_skipped_ticks IS
    'Ticks skipped because overlap = false and the previous tick''s job had not ended, since the schedule was created.';

INSERT INTO pgqueue.migrations (name) VALUES ('0012_schedule_overlap');
