DROP VIEW IF EXISTS pgqueue_background_completedtask;
DROP VIEW IF EXISTS pgqueue_background_task;
DROP FUNCTION IF EXISTS pgqueue_background_task_insert();
DROP FUNCTION IF EXISTS pgqueue_background_task_update();
DROP FUNCTION IF EXISTS pgqueue_background_task_delete();
DROP TABLE IF EXISTS pgqueue_background_task_meta;
