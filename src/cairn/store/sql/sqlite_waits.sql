-- Durable waits (store/_waits.py): sleeps, signals and the parked calls that
-- wait on them. Parking and sending a signal take lock_request first. The same names are defined in postgres_waits.sql.

-- name: wait_columns
id, request_id, call_id, kind, name, due_at_ms, status, created_at_ms, finished_at_ms

-- name: get_wait
SELECT {wait_columns} FROM waits WHERE id = :id

-- name: insert_wait
INSERT INTO waits (id, request_id, kind, name, due_at_ms, status, created_at_ms)
VALUES (:id, :request_id, :kind, :name, :due_at_ms, 'waiting', :now_ms)
ON CONFLICT (id) DO NOTHING

-- name: finish_wait
UPDATE waits SET status = :status, finished_at_ms = :now_ms
WHERE id = :id AND status = 'waiting'

-- name: waiting_signal
SELECT seq, value, encoding FROM signals
WHERE request_id = :request_id AND name = :name AND wait_id IS NULL
ORDER BY seq LIMIT 1

-- name: take_signal
UPDATE signals SET wait_id = :wait_id WHERE request_id = :request_id AND seq = :seq

-- name: delivered_signal
SELECT value, encoding FROM signals WHERE wait_id = :wait_id

-- name: attach_wait
UPDATE waits SET call_id = :call_id WHERE id = :id

-- name: park_call
-- The call gives up its executor until :not_before_ms (a timer), or until a
-- signal makes it due; a request that ended meanwhile leaves it cancelled.
UPDATE calls SET worker_id = NULL, executor = NULL, not_before_ms = :not_before_ms,
    status = CASE WHEN (SELECT status FROM requests r WHERE r.id = calls.request_id)
                       IN ('pending', 'running') THEN 'pending' ELSE 'cancelled' END
WHERE id = :call_id AND status = 'running'

-- name: release_unwound
-- In-process calls the parked call was running (its callees, waiting with it):
-- pending again, and no executor's.
UPDATE calls SET status = 'pending', worker_id = NULL, executor = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'running'

-- name: next_signal_seq
SELECT coalesce(max(seq), 0) + 1 FROM signals WHERE request_id = :request_id

-- name: insert_signal
INSERT INTO signals (request_id, seq, name, value, encoding, created_at_ms)
VALUES (:request_id, :seq, :name, :value, :encoding, :now_ms)

-- name: wake_waiters
-- Calls parked on a wait for this signal become due now.
UPDATE calls SET not_before_ms = :now_ms
WHERE status = 'pending' AND not_before_ms > :now_ms
  AND id IN (SELECT call_id FROM waits
             WHERE request_id = :request_id AND kind = 'signal' AND name = :name
               AND status = 'waiting' AND call_id IS NOT NULL)

-- name: list_waits
SELECT {wait_columns} FROM waits WHERE request_id = :request_id AND status = 'waiting'
ORDER BY created_at_ms, id

-- name: list_signals
SELECT seq, name, encoding, wait_id, created_at_ms, length(value) FROM signals
WHERE request_id = :request_id ORDER BY seq

-- name: parked_on
SELECT 1 FROM waits WHERE call_id = :call_id LIMIT 1

-- name: insert_children_wait
-- A parked caller waits for every call of a group (a Future's) to end.
INSERT INTO waits (id, request_id, call_id, kind, name, status, created_at_ms)
VALUES (:id, :request_id, :call_id, 'children', :name, 'waiting', :now_ms)
ON CONFLICT (id) DO UPDATE SET status = 'waiting', call_id = excluded.call_id,
    finished_at_ms = NULL

-- name: unfinished_in_groups
SELECT 1 FROM calls
WHERE group_id IN (SELECT value FROM json_each(:groups)) AND status IN ('pending', 'running') LIMIT 1

-- name: parents_waiting_on
SELECT 1 FROM waits
WHERE kind = 'children' AND status = 'waiting' AND name IN (SELECT value FROM json_each(:groups)) LIMIT 1

-- name: wake_parents
-- Callers parked on these groups whose every awaited group has ended: due now.
UPDATE calls SET not_before_ms = :now_ms
WHERE status = 'pending' AND not_before_ms > :now_ms
  AND id IN (SELECT w.call_id FROM waits w
             WHERE w.kind = 'children' AND w.status = 'waiting' AND w.name IN (SELECT value FROM json_each(:groups)))
  AND NOT EXISTS (SELECT 1 FROM waits v JOIN calls c ON c.group_id = v.name
                  WHERE v.call_id = calls.id AND v.kind = 'children'
                    AND v.status = 'waiting' AND c.status IN ('pending', 'running'))
RETURNING id

-- name: end_children_waits
UPDATE waits SET status = 'done', finished_at_ms = :now_ms
WHERE kind = 'children' AND status = 'waiting' AND call_id IN (SELECT value FROM json_each(:ids))
