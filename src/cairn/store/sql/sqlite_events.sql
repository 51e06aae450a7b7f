-- Named queries of the SQLite store for a checkpoint's FunctionRunCreated and
-- FunctionRunCompleted: read from its call row (calls.event_seq), or made rows.

-- name: keep_call_events
-- Before a call row whose events are read from it (event_seq) changes, its
-- FunctionRunCreated and FunctionRunCompleted become rows, exactly as
-- _events.call_created and call_succeeded build them (created_at: the time in
-- microseconds rounded half to even, as Python rounds; duration_ms: rounded to
-- thousandths so). Nothing when the row has no event_seq. Run once per call.
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
SELECT c.request_id, c.event_seq + e.n, e.kind,
       CASE e.n
       WHEN 0 THEN json_object(
           'request_id', c.request_id, 'function_name', c.function,
           'function_run_id', c.id,
           'created_at', strftime('%Y-%m-%dT%H:%M:%S', c.started_us / 1000000, 'unixepoch')
                         || printf('.%06dZ', c.started_us % 1000000),
           'parent_function_run_id', c.parent_id, 'call_kind', c.kind)
       ELSE json_object(
           'request_id', c.request_id, 'function_name', c.function,
           'function_run_id', c.id,
           'created_at', strftime('%Y-%m-%dT%H:%M:%S', c.finished_us / 1000000, 'unixepoch')
                         || printf('.%06dZ', c.finished_us % 1000000),
           'outcome', 'success', 'attempt', c.attempts,
           'duration_ms', c.duration_us / 1000.0)
       END,
       CASE e.n WHEN 0 THEN c.started_at_ms ELSE c.finished_at_ms END
FROM (SELECT request_id, event_seq, function, id, parent_id, kind, attempts,
             started_at_ms, finished_at_ms,
             {half_even_started} AS started_us,
             {half_even_finished} AS finished_us,
             {half_even_duration} AS duration_us
      FROM (SELECT *, started_at_ms * 1000 AS sv, finished_at_ms * 1000 AS fv,
                   (finished_at_ms - started_at_ms) * 1000 AS dv
            FROM calls
            WHERE id = :id AND event_seq IS NOT NULL)) c
JOIN (SELECT 0 AS n, 'FunctionRunCreated' AS kind
      UNION ALL SELECT 1, 'FunctionRunCompleted') e
ORDER BY c.event_seq, e.n

-- name: half_even_started
CAST(sv AS INTEGER) + CASE WHEN sv >= 0
    THEN (sv - CAST(sv AS INTEGER) > 0.5
          OR (sv - CAST(sv AS INTEGER) = 0.5 AND CAST(sv AS INTEGER) % 2 <> 0))
    ELSE -(sv - CAST(sv AS INTEGER) < -0.5
           OR (sv - CAST(sv AS INTEGER) = -0.5 AND CAST(sv AS INTEGER) % 2 <> 0)) END

-- name: half_even_finished
CAST(fv AS INTEGER) + CASE WHEN fv >= 0
    THEN (fv - CAST(fv AS INTEGER) > 0.5
          OR (fv - CAST(fv AS INTEGER) = 0.5 AND CAST(fv AS INTEGER) % 2 <> 0))
    ELSE -(fv - CAST(fv AS INTEGER) < -0.5
           OR (fv - CAST(fv AS INTEGER) = -0.5 AND CAST(fv AS INTEGER) % 2 <> 0)) END

-- name: half_even_duration
CAST(dv AS INTEGER) + CASE WHEN dv >= 0
    THEN (dv - CAST(dv AS INTEGER) > 0.5
          OR (dv - CAST(dv AS INTEGER) = 0.5 AND CAST(dv AS INTEGER) % 2 <> 0))
    ELSE -(dv - CAST(dv AS INTEGER) < -0.5
           OR (dv - CAST(dv AS INTEGER) = -0.5 AND CAST(dv AS INTEGER) % 2 <> 0)) END

-- name: list_events
-- A request's event rows after :after_seq and, kind NULL, the calls whose rows
-- number their FunctionRunCreated and FunctionRunCompleted (event_seq and the
-- next): the store builds those two from the columns. A call row stands for two
-- events: :limit events need :call_limit of them at most (the first may bring
-- only its FunctionRunCompleted), found in the request's index alone; none
-- looked for past the request's last number (a stream that waits for news).
SELECT seq, kind, payload, created_at_ms,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM events
WHERE request_id = :request_id AND seq > :after_seq
UNION ALL
SELECT event_seq, NULL, NULL, NULL,
       function, id, parent_id, kind, attempts, started_at_ms, finished_at_ms FROM calls
WHERE rowid IN (SELECT c.rowid FROM requests r JOIN calls c ON c.request_id = r.id
                WHERE r.id = :request_id AND r.event_seq > :after_seq
                  AND c.event_seq >= :after_seq
                ORDER BY c.event_seq LIMIT :call_limit)
ORDER BY 1 LIMIT :limit
