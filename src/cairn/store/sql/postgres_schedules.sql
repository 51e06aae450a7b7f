-- Schedules (store/_schedules.py). The same names are defined in
-- sqlite_schedules.sql.

-- name: schedule_columns
id, application, cron, input, paused, next_at_ms, last_at_ms, last_request_id,
created_at_ms

-- name: get_schedule
SELECT {schedule_columns} FROM schedules WHERE id = %(id)s

-- name: list_schedules
SELECT {schedule_columns} FROM schedules
WHERE %(application)s::text IS NULL OR application = %(application)s
ORDER BY created_at_ms, id

-- name: insert_schedule
INSERT INTO schedules (id, application, cron, input, paused, next_at_ms, created_at_ms)
VALUES (%(id)s, %(application)s, %(cron)s, %(input)s, %(paused)s, %(next_at_ms)s, %(created_at_ms)s)

-- name: pause_schedule
UPDATE schedules SET paused = %(paused)s, next_at_ms = %(next_at_ms)s WHERE id = %(id)s

-- name: delete_schedule
DELETE FROM schedules WHERE id = %(id)s

-- name: due_schedules
SELECT {schedule_columns} FROM schedules
WHERE paused = 0 AND next_at_ms <= %(now_ms)s
ORDER BY next_at_ms LIMIT %(limit)s

-- name: advance_schedule
-- Only the worker that still sees the tick due moves it on: one request a tick.
UPDATE schedules SET next_at_ms = %(next_at_ms)s, last_at_ms = %(fired_at_ms)s,
                     last_request_id = %(request_id)s
WHERE id = %(id)s AND next_at_ms = %(due_at_ms)s AND paused = 0
