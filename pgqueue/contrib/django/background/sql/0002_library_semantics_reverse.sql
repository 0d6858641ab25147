-- Back to the views of 0001 (followed, in the migration, by 0001's view definitions).
DROP VIEW pgqueue_background_completedtask;
DROP VIEW pgqueue_background_task;
DROP FUNCTION pgqueue_background_completedtask_insert();
DROP FUNCTION pgqueue_background_save_meta(bigint, record);
DROP FUNCTION pgqueue_background_params(text);
ALTER TABLE pgqueue_background_task_meta DROP COLUMN locked_by;
