-- Named queries of the PostgreSQL store for a checkpoint's FunctionRunCreated and
-- FunctionRunCompleted: read from its call row (calls.event_seq), or rows that
-- the calls_keep_events trigger made of them (schema 9).

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
