-- pgqueue 0002: periodic schedules declared in code, and the ledger of their ticks.
--
-- Exactly one job per (schedule, tick), however many workers run a scheduler:
--   * a scheduler locks the due schedule row (FOR UPDATE SKIP LOCKED), so one scheduler at a
--     time fires a schedule and the others pass;
--   * in that same transaction it records each tick in pgqueue.schedule_ticks, whose primary key
--     (schedule_id, tick_at) refuses a second job for a tick even if two schedulers disagreed,
--     inserts the jobs for the ticks it could record, and advances next_tick_at;
--   * "now" is always the database's now(), never a worker's clock.
-- Workers rewrite the definition columns of origin = 'code' rows from code at start
-- ("reconciliation"); the columns paused* belong to operators and survive deploys. Rows of
-- origin = 'runtime' are created by programs (django-background-tasks' repeat=) and are left
-- alone by reconciliation.

CREATE TABLE pgqueue.schedules (
    id              text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
    task_name       text NOT NULL CHECK (length(task_name) BETWEEN 1 AND 300),
    cron            text,
    every           interval,
    anchor_at       timestamptz,
    timezone        text NOT NULL DEFAULT 'UTC',
    args            jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(args) = 'array'),
    kwargs          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(kwargs) = 'object'),
    queue           text NOT NULL DEFAULT 'default' CHECK (length(queue) BETWEEN 1 AND 200),
    priority        integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    misfire         text NOT NULL DEFAULT 'skip' CHECK (misfire IN ('skip', 'all', 'none')),
    misfire_grace   interval NOT NULL DEFAULT '1 minute' CHECK (misfire_grace >= interval '0'),
    misfire_window  interval NOT NULL DEFAULT '1 day' CHECK (misfire_window > interval '0'),
    ends_at         timestamptz,
    origin          text NOT NULL DEFAULT 'code' CHECK (origin IN ('code', 'runtime')),
    next_tick_at    timestamptz,
    restart_from    timestamptz,
    last_tick_at    timestamptz,
    last_job_id     bigint,
    last_fired_at   timestamptz,
    last_fired_by   bigint,
    skipped_ticks   bigint NOT NULL DEFAULT 0,
    paused          boolean NOT NULL DEFAULT false,
    paused_at       timestamptz,
    orphaned        boolean NOT NULL DEFAULT false,
    orphaned_at     timestamptz,
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_cron_or_every CHECK ((cron IS NULL) <> (every IS NULL)),
    CONSTRAINT schedules_every_at_least_a_second CHECK (every IS NULL OR every >= interval '1 second')
);
COMMENT ON TABLE pgqueue.schedules IS 'Periodic schedules declared in code (reconciled at worker start). Pause with pgqueue.pause_schedule(id).';
COMMENT ON COLUMN pgqueue.schedules.id IS 'Stable schedule id (defaults to the task name in code).';
COMMENT ON COLUMN pgqueue.schedules.cron IS '5-field cron expression, read in the schedule''s timezone (NULL for an interval schedule).';
COMMENT ON COLUMN pgqueue.schedules.every IS 'Fixed interval; ticks are anchor_at (default: the Unix epoch) plus multiples of it (NULL for a cron schedule).';
COMMENT ON COLUMN pgqueue.schedules.anchor_at IS 'Interval schedules: the instant ticks count from (NULL: the Unix epoch).';
COMMENT ON COLUMN pgqueue.schedules.ends_at IS 'No tick after this instant fires (NULL: never ends).';
COMMENT ON COLUMN pgqueue.schedules.origin IS 'code: declared in code and reconciled by workers; runtime: created by a program, never orphaned.';
COMMENT ON COLUMN pgqueue.schedules.timezone IS 'IANA timezone the cron expression is read in (DST handled like Vixie cron).';
COMMENT ON COLUMN pgqueue.schedules.misfire IS 'Ticks missed while no scheduler ran: skip = run the latest once, all = run each within misfire_window, none = run none.';
COMMENT ON COLUMN pgqueue.schedules.misfire_grace IS 'A tick enqueued at most this late is on time and always runs; later than this it is missed.';
COMMENT ON COLUMN pgqueue.schedules.misfire_window IS 'misfire = all: how far back missed ticks are still run.';
COMMENT ON COLUMN pgqueue.schedules.next_tick_at IS 'The next tick to fire (database time). NULL: the first tick at or after restart_from.';
COMMENT ON COLUMN pgqueue.schedules.restart_from IS 'Set when next_tick_at is NULL (after a resume, or for a new runtime schedule).';
COMMENT ON COLUMN pgqueue.schedules.last_tick_at IS 'The latest tick a job was enqueued for.';
COMMENT ON COLUMN pgqueue.schedules.last_job_id IS 'pgqueue.jobs.id of the job enqueued for last_tick_at.';
COMMENT ON COLUMN pgqueue.schedules.last_fired_by IS 'pgqueue.workers.id of the worker whose scheduler enqueued last_tick_at.';
COMMENT ON COLUMN pgqueue.schedules.skipped_ticks IS 'Ticks not enqueued because of the misfire policy, since the schedule was created.';
COMMENT ON COLUMN pgqueue.schedules.paused IS 'Set by pgqueue.pause_schedule(id); ticks falling while paused are never run.';
COMMENT ON COLUMN pgqueue.schedules.orphaned IS 'The schedule is no longer declared in code: it does not fire. Delete the row to forget it.';
COMMENT ON COLUMN pgqueue.schedules.last_seen_at IS 'When a starting worker last found the schedule declared in its code.';

-- The schedulers' "what is due next" read: only live schedules, by next tick (a handful of rows,
-- but a DBA may keep thousands of runtime ones).
CREATE INDEX schedules_next_tick_idx ON pgqueue.schedules (next_tick_at)
    WHERE NOT paused AND NOT orphaned;

CREATE TABLE pgqueue.schedule_ticks (
    schedule_id text NOT NULL REFERENCES pgqueue.schedules (id) ON DELETE CASCADE,
    tick_at     timestamptz NOT NULL,
    job_id      bigint NOT NULL,
    worker_id   bigint,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_id, tick_at)
);
COMMENT ON TABLE pgqueue.schedule_ticks IS 'One row per enqueued tick: the primary key makes a second job for the same (schedule, tick) impossible. Pruned after 7 days.';
COMMENT ON COLUMN pgqueue.schedule_ticks.tick_at IS 'The tick (database time); the job''s run_at is the same instant.';
COMMENT ON COLUMN pgqueue.schedule_ticks.worker_id IS 'pgqueue.workers.id of the worker whose scheduler enqueued the tick.';

CREATE FUNCTION pgqueue.pause_schedule(schedule_id text) RETURNS boolean
LANGUAGE sql AS $$
    UPDATE pgqueue.schedules
    SET paused = true, paused_at = CASE WHEN paused THEN paused_at ELSE now() END
    WHERE id = pause_schedule.schedule_id
    RETURNING true
$$;
COMMENT ON FUNCTION pgqueue.pause_schedule(text) IS
    'Stop a schedule from firing until pgqueue.resume_schedule(id). Returns NULL for an unknown id.';

-- Resuming does not backfill the ticks that fell while paused: the next tick is recomputed
-- (by the next scheduler pass, as the first tick from now on) instead of kept from before.
CREATE FUNCTION pgqueue.resume_schedule(schedule_id text) RETURNS boolean
LANGUAGE sql AS $$
    UPDATE pgqueue.schedules
    SET paused = false, paused_at = NULL,
        next_tick_at = CASE WHEN paused THEN NULL ELSE next_tick_at END,
        restart_from = CASE WHEN paused THEN now() ELSE restart_from END
    WHERE id = resume_schedule.schedule_id
    RETURNING true
$$;
COMMENT ON FUNCTION pgqueue.resume_schedule(text) IS
    'Let a paused schedule fire again from now on (missed ticks are not run). Returns NULL for an unknown id.';

INSERT INTO pgqueue.migrations (name) VALUES ('0002_periodic');
