-- Named queries of the SQLite store for a checkpoint's FunctionRunCreated and
-- FunctionRunCompleted: read from its call row (calls.event_seq), or rows that
-- the calls_keep_events trigger made of them (schema 9).

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
