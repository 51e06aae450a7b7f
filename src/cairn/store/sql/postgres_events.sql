-- Named queries of the PostgreSQL store for a checkpoint's FunctionRunCreated and
-- FunctionRunCompleted: read from its call row (calls.event_seq), or made rows.

-- name: keep_call_events
-- Before a call row whose events are read from it (event_seq) changes, its
-- FunctionRunCreated and FunctionRunCompleted become rows, exactly as
-- _events.call_created and call_succeeded build them (round() of a double rounds
-- half to even, as Python does; duration_ms is written as Python writes a float).
-- Nothing when the row has no event_seq. Run once per call (executemany): with
-- one key, the generic plan PostgreSQL keeps for this prepared statement costs
-- what a custom one does, so it stops planning it anew on every commit (~0.3 ms).
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
SELECT c.request_id, c.event_seq + e.n, e.kind,
       CASE e.n
       WHEN 0 THEN json_build_object(
           'request_id', c.request_id, 'function_name', c.function,
           'function_run_id', c.id,
           'created_at', to_char(to_timestamp(c.started_us / 1000000) AT TIME ZONE 'UTC',
                                 'YYYY-MM-DD"T"HH24:MI:SS')
                         || '.' || lpad((c.started_us %% 1000000)::text, 6, '0') || 'Z',
           'parent_function_run_id', c.parent_id, 'call_kind', c.kind)
       ELSE json_build_object(
           'request_id', c.request_id, 'function_name', c.function,
           'function_run_id', c.id,
           'created_at', to_char(to_timestamp(c.finished_us / 1000000) AT TIME ZONE 'UTC',
                                 'YYYY-MM-DD"T"HH24:MI:SS')
                         || '.' || lpad((c.finished_us %% 1000000)::text, 6, '0') || 'Z',
           'outcome', 'success', 'attempt', c.attempts,
           'duration_ms', (CASE WHEN c.duration_ms = trunc(c.duration_ms)
                                THEN c.duration_ms::text || '.0'
                                ELSE c.duration_ms::text END)::json)
       END::text,
       CASE e.n WHEN 0 THEN c.started_at_ms ELSE c.finished_at_ms END
FROM (SELECT request_id, event_seq, function, id, parent_id, kind, attempts,
             started_at_ms, finished_at_ms,
             ({half_even_started})::bigint AS started_us,
             ({half_even_finished})::bigint AS finished_us,
             ({half_even_duration}) / 1000 AS duration_ms
      FROM (SELECT calls.*, started_at_ms * 1000 AS sv, finished_at_ms * 1000 AS fv,
                   (finished_at_ms - started_at_ms) * 1000 AS dv
            FROM calls
            WHERE id = %(id)s AND event_seq IS NOT NULL) AS kept) AS c,
     (VALUES (0, 'FunctionRunCreated'), (1, 'FunctionRunCompleted')) AS e (n, kind)
ORDER BY c.event_seq, e.n

-- name: half_even_started
round(sv)

-- name: half_even_finished
round(fv)

-- name: half_even_duration
round(dv)

-- name: list_events
-- A request's event rows after after_seq and, kind NULL, the calls whose rows
-- number their FunctionRunCreated and FunctionRunCompleted (event_seq and the
-- next): the store builds those two from the columns. A call row stands for two
-- events: limit events need call_limit of them at most (the first may bring
-- only its FunctionRunCompleted); none looked for past the request's last
-- number (a stream that waits for news).
SELECT seq, kind, payload, created_at_ms, NULL::text, NULL::text, NULL::text,
       NULL::text, NULL::integer, NULL::float8, NULL::float8 FROM events
WHERE request_id = %(request_id)s AND seq > %(after_seq)s
UNION ALL
(SELECT c.event_seq, NULL, NULL, NULL, c.function, c.id, c.parent_id, c.kind,
        c.attempts, c.started_at_ms, c.finished_at_ms
 FROM requests r JOIN calls c ON c.request_id = r.id
 WHERE r.id = %(request_id)s AND r.event_seq > %(after_seq)s
   AND c.event_seq >= %(after_seq)s
 ORDER BY c.event_seq LIMIT %(call_limit)s)
ORDER BY 1 LIMIT %(limit)s
