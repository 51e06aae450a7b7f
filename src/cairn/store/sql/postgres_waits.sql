-- Durable waits (store/_waits.py): sleeps, signals and the parked calls that
-- wait on them. Parking and sending a signal take lock_request first. The same names are defined in sqlite_waits.sql.

-- name: wait_columns
id, request_id, call_id, kind, name, due_at_ms, status, created_at_ms, finished_at_ms

-- name: get_wait
SELECT {wait_columns} FROM waits WHERE id = %(id)s

-- name: insert_wait
INSERT INTO waits (id, request_id, kind, name, due_at_ms, status, created_at_ms)
VALUES (%(id)s, %(request_id)s, %(kind)s, %(name)s, %(due_at_ms)s, 'waiting', %(now_ms)s)
ON CONFLICT (id) DO NOTHING

-- name: finish_wait
UPDATE waits SET status = %(status)s, finished_at_ms = %(now_ms)s
WHERE id = %(id)s AND status = 'waiting'

-- name: waiting_signal
SELECT seq, value, encoding FROM signals
WHERE request_id = %(request_id)s AND name = %(name)s AND wait_id IS NULL
ORDER BY seq LIMIT 1

-- name: take_signal
UPDATE signals SET wait_id = %(wait_id)s WHERE request_id = %(request_id)s AND seq = %(seq)s

-- name: delivered_signal
SELECT value, encoding FROM signals WHERE wait_id = %(wait_id)s

-- name: attach_wait
UPDATE waits SET call_id = %(call_id)s WHERE id = %(id)s

-- name: park_call
-- The call gives up its executor until not_before_ms (a timer), or until a
-- signal makes it due; a request that ended meanwhile leaves it cancelled.
UPDATE calls SET worker_id = NULL, executor = NULL, not_before_ms = %(not_before_ms)s,
    status = CASE WHEN (SELECT status FROM requests r WHERE r.id = calls.request_id)
                       IN ('pending', 'running') THEN 'pending' ELSE 'cancelled' END
WHERE id = %(call_id)s AND status = 'running'

-- name: release_unwound
-- In-process calls the parked call was running (its callees, waiting with it):
-- pending again, and no executor's.
UPDATE calls SET status = 'pending', worker_id = NULL, executor = NULL
WHERE id = ANY(%(ids)s) AND status = 'running'

-- name: next_signal_seq
SELECT coalesce(max(seq), 0) + 1 FROM signals WHERE request_id = %(request_id)s

-- name: insert_signal
INSERT INTO signals (request_id, seq, name, value, encoding, created_at_ms)
VALUES (%(request_id)s, %(seq)s, %(name)s, %(value)s, %(encoding)s, %(now_ms)s)

-- name: wake_waiters
-- Calls parked on a wait for this signal become due now.
UPDATE calls SET not_before_ms = %(now_ms)s
WHERE status = 'pending' AND not_before_ms > %(now_ms)s
  AND id IN (SELECT call_id FROM waits
             WHERE request_id = %(request_id)s AND kind = 'signal' AND name = %(name)s
               AND status = 'waiting' AND call_id IS NOT NULL)

-- name: list_waits
SELECT {wait_columns} FROM waits WHERE request_id = %(request_id)s AND status = 'waiting'
ORDER BY created_at_ms, id

-- name: list_signals
SELECT seq, name, encoding, wait_id, created_at_ms, octet_length(value) FROM signals
WHERE request_id = %(request_id)s ORDER BY seq

-- name: parked_on
SELECT 1 FROM waits WHERE call_id = %(call_id)s LIMIT 1

-- name: insert_children_wait
-- A parked caller waits for every call of a group (a Future's) to end.
INSERT INTO waits (id, request_id, call_id, kind, name, status, created_at_ms)
VALUES (%(id)s, %(request_id)s, %(call_id)s, 'children', %(name)s, 'waiting', %(now_ms)s)
ON CONFLICT (id) DO UPDATE SET status = 'waiting', call_id = excluded.call_id,
    finished_at_ms = NULL

-- name: unfinished_in_groups
SELECT 1 FROM calls
WHERE group_id = ANY(%(groups)s) AND status IN ('pending', 'running') LIMIT 1

-- name: parents_waiting_on
SELECT 1 FROM waits
WHERE kind = 'children' AND status = 'waiting' AND name = ANY(%(groups)s) LIMIT 1

-- name: wake_parents
-- Callers parked on these groups whose every awaited group has ended: due now.
UPDATE calls SET not_before_ms = %(now_ms)s
WHERE status = 'pending' AND not_before_ms > %(now_ms)s
  AND id IN (SELECT w.call_id FROM waits w
             WHERE w.kind = 'children' AND w.status = 'waiting' AND w.name = ANY(%(groups)s))
  AND NOT EXISTS (SELECT 1 FROM waits v JOIN calls c ON c.group_id = v.name
                  WHERE v.call_id = calls.id AND v.kind = 'children'
                    AND v.status = 'waiting' AND c.status IN ('pending', 'running'))
RETURNING id

-- name: end_children_waits
UPDATE waits SET status = 'done', finished_at_ms = %(now_ms)s
WHERE kind = 'children' AND status = 'waiting' AND call_id = ANY(%(ids)s)
