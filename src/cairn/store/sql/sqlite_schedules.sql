-- Schedules (store/_schedules.py). The same names are defined in
-- postgres_schedules.sql.

-- name: schedule_columns
id, application, cron, input, paused, next_at_ms, last_at_ms, last_request_id,
created_at_ms

-- name: get_schedule
SELECT {schedule_columns} FROM schedules WHERE id = :id

-- name: list_schedules
SELECT {schedule_columns} FROM schedules
WHERE :application IS NULL OR application = :application
ORDER BY created_at_ms, id

-- name: insert_schedule
INSERT INTO schedules (id, application, cron, input, paused, next_at_ms, created_at_ms)
VALUES (:id, :application, :cron, :input, :paused, :next_at_ms, :created_at_ms)

-- name: pause_schedule
UPDATE schedules SET paused = :paused, next_at_ms = :next_at_ms WHERE id = :id

-- name: delete_schedule
DELETE FROM schedules WHERE id = :id

-- name: due_schedules
SELECT {schedule_columns} FROM schedules
WHERE paused = 0 AND next_at_ms <= :now_ms
ORDER BY next_at_ms LIMIT :limit

-- name: advance_schedule
-- Only the worker that still sees the tick due moves it on: one request a tick.
UPDATE schedules SET next_at_ms = :next_at_ms, last_at_ms = :fired_at_ms,
                     last_request_id = :request_id
WHERE id = :id AND next_at_ms = :due_at_ms AND paused = 0
