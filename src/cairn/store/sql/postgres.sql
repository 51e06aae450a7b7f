-- Named queries for the PostgreSQL store: "-- name: x" starts a block.
-- Same names and column orders as sqlite.sql where both have the query.

-- name: call_columns
id, request_id, parent_id, seq, function, kind, group_id, dispatched, status,
error_json, run, run_attempts, attempts, served_run, not_before_ms, worker_id,
executor, state_writes IS NOT NULL, started_at_ms, finished_at_ms

-- name: recorded_children
SELECT id, seq, status, CASE WHEN status = 'succeeded' THEN output END,
       state_writes IS NOT NULL, CASE WHEN status = 'succeeded' THEN args END
FROM calls WHERE request_id = %(request_id)s AND parent_id = %(parent_id)s
  AND dispatched = 0 AND seq >= %(from_seq)s
ORDER BY seq LIMIT %(limit)s

-- name: request_columns
-- The last: whether an attempt of its latest run failed (attempts holds only
-- failed ones), without which no call of the run failed for good.
id, application, code_ref, status, failure_reason, error_json, input, output,
headers_json, run, strict_replay, progress_json, created_at_ms, started_at_ms,
finished_at_ms, owner,
EXISTS (SELECT 1 FROM attempts a WHERE a.request_id = requests.id AND a.run = requests.run)

-- name: insert_request
-- Nothing, and no row back, when the id is taken.
INSERT INTO requests (id, application, code_ref, status, input, headers_json, created_at_ms,
                      owner, priority)
VALUES (%(id)s, %(application)s, %(code_ref)s, 'pending', %(input)s, %(headers_json)s,
        %(created_at_ms)s, %(owner)s, %(priority)s)
ON CONFLICT (id) DO NOTHING
RETURNING id

-- name: insert_started_request
-- A request created with its application call claimed (create_claimed): running
-- from now_ms, its counter past the RequestStarted numbered 1. Nothing when the id
-- is taken (its application call's id is then taken too: insert_claimed_call
-- breaks that key and the transaction rolls back).
INSERT INTO requests (id, application, code_ref, status, input, headers_json, created_at_ms,
                      started_at_ms, event_seq, owner, priority)
VALUES (%(id)s, %(application)s, %(code_ref)s, 'running', %(input)s, %(headers_json)s,
        %(created_at_ms)s, %(now_ms)s, 1, %(owner)s, %(priority)s)
ON CONFLICT (id) DO NOTHING

-- name: insert_claimed_call
-- The application call of insert_started_request, held by its executor.
INSERT INTO calls (id, request_id, parent_id, seq, function, kind, group_id, dispatched,
                   status, args, run, not_before_ms, concurrency_key, priority, worker_id,
                   executor, started_at_ms)
VALUES (%(id)s, %(request_id)s, %(parent_id)s, %(seq)s, %(function)s, %(kind)s,
        %(group_id)s, %(dispatched)s, 'running', %(args)s, 1, 0, %(concurrency_key)s,
        %(priority)s, %(worker_id)s, %(executor)s, %(now_ms)s)

-- name: create_claimed
-- A request created with its application call claimed and its RequestStarted
-- numbered 1, in one statement that the store sends alone (the application call's
-- id is the request's: one id serves both rows). A taken id inserts no request
-- and no event, and the call breaks its key: nothing is written.
WITH request AS (
{insert_started_request}
    RETURNING id
), application_call AS (
{insert_claimed_call}
)
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
SELECT id, 1, %(event_kind)s, %(event_payload)s, %(now_ms)s FROM request

-- name: insert_pending_call
-- A call has its request's priority, for claim_any to order by with an index.
INSERT INTO calls (id, request_id, parent_id, seq, function, kind, group_id, dispatched,
                   status, args, run, not_before_ms, concurrency_key, priority)
VALUES (%(id)s, %(request_id)s, %(parent_id)s, %(seq)s, %(function)s, %(kind)s,
        %(group_id)s, %(dispatched)s, 'pending', %(args)s, %(run)s, %(not_before_ms)s,
        %(concurrency_key)s,
        COALESCE((SELECT priority FROM requests WHERE id = %(request_id)s), 0))
ON CONFLICT (id) DO UPDATE SET
    status = 'pending', run = excluded.run, run_attempts = 0,
    not_before_ms = excluded.not_before_ms, args = excluded.args, dispatched = 1,
    concurrency_key = excluded.concurrency_key,
    error_json = NULL, worker_id = NULL, executor = NULL
WHERE calls.status <> 'succeeded' AND (calls.run < excluded.run OR calls.status = 'stale')

-- name: lock_request
-- Every transaction that appends events or may end a request takes its row first
-- (request before calls: one lock order, no deadlocks), so that two workers never
-- reuse a sequence number or both decide that the request finished. NO KEY UPDATE
-- leaves inserts of rows that reference the request (their foreign-key checks) free.
SELECT application, status FROM requests WHERE id = %(request_id)s FOR NO KEY UPDATE

-- name: claim_any
-- Of the claimer's scope: requests it owns (owner, a local run's engine) or
-- nobody's (owner NULL, a serving worker), functions it has loaded (served,
-- NULL for all), and of no retry still kept for the executor that ran it (see
-- RETRY_AFFINITY_MS). Not of full functions (at their cap or out of tokens), nor of
-- full_keys (function, key) pairs at their cap. Most urgent request first.
-- SKIP LOCKED: concurrent claimers pass over each other's rows instead of queueing.
WITH next AS (
    SELECT c.id FROM calls c
    WHERE c.status = 'pending' AND c.dispatched = 1 AND c.not_before_ms <= %(now_ms)s
      AND (c.worker_id IS NULL
           OR (c.worker_id = %(worker_id)s AND c.executor = %(executor)s)
           OR c.not_before_ms <= %(now_ms)s - %(affinity_ms)s)
      AND NOT (c.function = ANY(%(full)s::text[]))
      AND (c.concurrency_key IS NULL
           OR NOT (c.function || chr(31) || c.concurrency_key = ANY(%(full_keys)s::text[])))
      AND (%(served)s::text[] IS NULL OR c.function = ANY(%(served)s::text[]))
      AND EXISTS (SELECT 1 FROM requests r
                  WHERE r.id = c.request_id AND r.status IN ('pending', 'running')
                    AND r.owner IS NOT DISTINCT FROM %(owner)s::text)
    ORDER BY c.priority DESC, c.not_before_ms LIMIT 1
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE calls SET status = 'running', worker_id = %(worker_id)s, executor = %(executor)s,
                 started_at_ms = %(now_ms)s
FROM next, requests r
WHERE calls.id = next.id AND r.id = calls.request_id
RETURNING {claimed_columns}

-- name: claim_in_group
WITH next AS (
    SELECT c.id FROM calls c
    WHERE c.group_id = %(group_id)s AND c.status = 'pending' AND c.dispatched = 1
      AND c.not_before_ms <= %(now_ms)s
      AND (%(served)s::text[] IS NULL OR c.function = ANY(%(served)s::text[]))
      AND NOT (c.function = ANY(%(full)s::text[]))
      AND (c.concurrency_key IS NULL
           OR NOT (c.function || chr(31) || c.concurrency_key = ANY(%(full_keys)s::text[])))
    ORDER BY c.seq LIMIT 1
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE calls SET status = 'running', worker_id = %(worker_id)s, executor = %(executor)s,
                 started_at_ms = %(now_ms)s
FROM next, requests r
WHERE calls.id = next.id AND r.id = calls.request_id
RETURNING {claimed_columns}

-- name: claim_batch_in_group
WITH next AS (
    SELECT c.id FROM calls c
    WHERE c.group_id = %(group_id)s AND c.status = 'pending' AND c.dispatched = 1
      AND c.not_before_ms <= %(now_ms)s
      AND (%(served)s::text[] IS NULL OR c.function = ANY(%(served)s::text[]))
    ORDER BY c.seq LIMIT %(limit)s
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE calls SET status = 'running', worker_id = %(worker_id)s, executor = %(executor)s,
                 started_at_ms = %(now_ms)s
FROM next, requests r
WHERE calls.id = next.id AND r.id = calls.request_id
RETURNING {claimed_columns}

-- name: claim_one
WITH next AS (
    SELECT c.id FROM calls c
    WHERE c.id = %(call_id)s AND c.status = 'pending' AND c.dispatched = 1
      AND c.not_before_ms <= %(now_ms)s
      AND (%(served)s::text[] IS NULL OR c.function = ANY(%(served)s::text[]))
      AND NOT (c.function = ANY(%(full)s::text[]))
      AND (c.concurrency_key IS NULL
           OR NOT (c.function || chr(31) || c.concurrency_key = ANY(%(full_keys)s::text[])))
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE calls SET status = 'running', worker_id = %(worker_id)s, executor = %(executor)s,
                 started_at_ms = %(now_ms)s
FROM next, requests r
WHERE calls.id = next.id AND r.id = calls.request_id
RETURNING {claimed_columns}

-- name: claimed_columns
calls.id, calls.request_id, calls.parent_id, calls.seq, calls.function, calls.kind,
calls.group_id, calls.dispatched, calls.status, calls.error_json, calls.run,
calls.run_attempts, calls.attempts, calls.served_run, calls.not_before_ms,
calls.worker_id, calls.executor, calls.state_writes IS NOT NULL, calls.started_at_ms,
calls.finished_at_ms, calls.args, r.run, r.strict_replay, r.application,
calls.concurrency_key

-- name: due_call
SELECT 1 FROM calls
WHERE id = %(call_id)s AND status = 'pending' AND dispatched = 1
  AND not_before_ms <= %(now_ms)s

-- name: due_in_group
SELECT 1 FROM calls
WHERE group_id = %(group_id)s AND status = 'pending' AND dispatched = 1
  AND not_before_ms <= %(now_ms)s
LIMIT 1

-- name: running_counts
SELECT function, count(*) FROM calls
WHERE status = 'running' AND function = ANY(%(names)s::text[])
GROUP BY function

-- name: lock_function
-- max_concurrency: claimers of one capped function count its running calls one at
-- a time (the lock is held until commit, so each count sees the claims before it).
SELECT pg_advisory_xact_lock(7461, hashtext(%(function)s))

-- name: count_running
SELECT count(*) FROM calls WHERE status = 'running' AND function = %(function)s

-- name: bucket_levels
SELECT function, tokens, updated_at_ms FROM rate_limits
WHERE function = ANY(%(names)s::text[])

-- name: take_token
-- A call of a rate-limited function starts: take a token, refilled up to now;
-- no row back when none is left. The upsert holds the bucket's row lock to
-- commit, so claimers on every host take tokens one at a time. Another host's
-- clock may be behind: time never runs backwards for a bucket.
INSERT INTO rate_limits AS b (function, tokens, updated_at_ms, per_ms, burst)
VALUES (%(function)s, %(burst)s - 1, %(now_ms)s, %(per_ms)s, %(burst)s)
ON CONFLICT (function) DO UPDATE SET
    tokens = LEAST(%(burst)s::float8,
                   b.tokens + GREATEST(0, %(now_ms)s - b.updated_at_ms) * %(per_ms)s) - 1,
    updated_at_ms = GREATEST(b.updated_at_ms, %(now_ms)s),
    per_ms = %(per_ms)s, burst = %(burst)s
WHERE LEAST(%(burst)s::float8,
            b.tokens + GREATEST(0, %(now_ms)s - b.updated_at_ms) * %(per_ms)s) >= %(one)s
RETURNING b.tokens

-- name: running_key_counts
SELECT function, concurrency_key, count(*) FROM calls
WHERE status = 'running' AND concurrency_key IS NOT NULL
  AND function = ANY(%(names)s::text[])
GROUP BY function, concurrency_key

-- name: flow_waits
-- A request's pending dispatched calls that flow control holds back: of a
-- function whose bucket is out of tokens now, or of a key with running calls.
SELECT DISTINCT c.function, 'rate', NULL FROM calls c
JOIN rate_limits b ON b.function = c.function
WHERE c.request_id = %(request_id)s AND c.status = 'pending' AND c.dispatched = 1
  AND LEAST(b.burst, b.tokens + GREATEST(0, %(now_ms)s - b.updated_at_ms) * b.per_ms)
      < %(one)s
UNION
SELECT DISTINCT c.function, 'key', c.concurrency_key FROM calls c
WHERE c.request_id = %(request_id)s AND c.status = 'pending' AND c.dispatched = 1
  AND c.concurrency_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM calls o
              WHERE o.status = 'running' AND o.function = c.function
                AND o.concurrency_key = c.concurrency_key)
ORDER BY 1, 2, 3

-- name: lock_key
-- max_concurrency per key: claimers of one key count its running calls one at a
-- time, as lock_function does for a function.
SELECT pg_advisory_xact_lock(7462, hashtext(%(function)s || chr(31) || %(key)s))

-- name: count_running_key
SELECT count(*) FROM calls
WHERE status = 'running' AND function = %(function)s AND concurrency_key = %(key)s

-- name: mark_request_running
UPDATE requests SET status = 'running', started_at_ms = COALESCE(started_at_ms, %(now_ms)s)
WHERE id = %(request_id)s AND status = 'pending'

-- name: mark_running
INSERT INTO calls (id, request_id, parent_id, seq, function, kind, group_id, dispatched,
                   status, run, worker_id, executor, started_at_ms, concurrency_key)
VALUES (%(id)s, %(request_id)s, %(parent_id)s, %(seq)s, %(function)s, %(kind)s,
        %(group_id)s, %(dispatched)s, 'running', %(run)s, %(worker_id)s, %(executor)s,
        %(started_at_ms)s, %(concurrency_key)s)
ON CONFLICT (id) DO UPDATE SET
    status = 'running', run = excluded.run, worker_id = excluded.worker_id,
    concurrency_key = excluded.concurrency_key,
    executor = excluded.executor, started_at_ms = excluded.started_at_ms
WHERE calls.status IN ('pending', 'stale')
   OR (calls.run < excluded.run AND calls.status <> 'succeeded')

-- name: upsert_success
-- A succeeded call's row, its event numbers taken by a bump_event_seq before it in
-- the same transaction (under the request's row lock).
WITH numbered AS (SELECT event_seq FROM requests WHERE id = %(request_id)s),
gate AS (SELECT)
{success_row}

-- name: commit_checkpoint
-- One call's checkpoint with its events' numbers in one statement, which the store
-- sends alone (its own transaction: one message, one answer). The UPDATE takes the
-- numbers from the request's counter, and its row lock, before the row uses them.
WITH numbered AS (
    UPDATE requests SET event_seq = event_seq + %(event_count)s WHERE id = %(request_id)s
    RETURNING event_seq
), gate AS (SELECT)
{success_row}

-- name: success_row
-- event_seq: the number of the call's FunctionRunCreated when its events are read
-- from the row (event_number of the event_count numbers this commit took from
-- the request's counter, which ``numbered`` holds after the bump), else NULL.
-- Written once per row of ``gate``: (SELECT), or none where a statement holds the
-- row back.
INSERT INTO calls (id, request_id, parent_id, seq, function, kind, group_id, dispatched,
                   status, args, output, run, run_attempts, attempts, state_writes,
                   started_at_ms, finished_at_ms, code_version, event_seq)
SELECT %(id)s, %(request_id)s, %(parent_id)s, %(seq)s, %(function)s, %(kind)s,
       %(group_id)s, %(dispatched)s, 'succeeded', %(args)s, %(output)s, %(run)s,
       %(run_attempts)s, %(attempts)s, %(state_writes)s, %(started_at_ms)s,
       %(finished_at_ms)s, %(code_version)s,
       (SELECT event_seq - %(event_count)s::bigint + %(event_number)s::bigint
        FROM numbered WHERE %(event_number)s::bigint IS NOT NULL)
FROM gate WHERE true
ON CONFLICT (id) DO UPDATE SET
    status = 'succeeded', code_version = excluded.code_version, args = COALESCE(excluded.args, calls.args),
    output = excluded.output, error_json = NULL, run = excluded.run,
    run_attempts = excluded.run_attempts, attempts = excluded.attempts,
    state_writes = excluded.state_writes, started_at_ms = excluded.started_at_ms,
    finished_at_ms = excluded.finished_at_ms, worker_id = NULL, executor = NULL,
    event_seq = excluded.event_seq

-- name: upsert_failure
INSERT INTO calls (id, request_id, parent_id, seq, function, kind, group_id, dispatched,
                   status, args, error_json, run, run_attempts, attempts, not_before_ms,
                   started_at_ms, finished_at_ms)
VALUES (%(id)s, %(request_id)s, %(parent_id)s, %(seq)s, %(function)s, %(kind)s,
        %(group_id)s, %(dispatched)s, %(status)s, %(args)s, %(error_json)s, %(run)s,
        %(run_attempts)s, %(attempts)s, %(not_before_ms)s, %(started_at_ms)s,
        %(finished_at_ms)s)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, args = COALESCE(excluded.args, calls.args),
    error_json = excluded.error_json, run = excluded.run,
    run_attempts = excluded.run_attempts, attempts = excluded.attempts,
    not_before_ms = excluded.not_before_ms,
    started_at_ms = COALESCE(excluded.started_at_ms, calls.started_at_ms),
    finished_at_ms = excluded.finished_at_ms,
    worker_id = CASE WHEN %(retry_here)s = 1 THEN calls.worker_id END,
    executor = CASE WHEN %(retry_here)s = 1 THEN calls.executor END
WHERE calls.status <> 'succeeded'

-- name: insert_attempt
INSERT INTO attempts (call_id, attempt, request_id, run, outcome, error_json,
                      started_at_ms, finished_at_ms, retry_delay_s, code_version)
VALUES (%(call_id)s, %(attempt)s, %(request_id)s, %(run)s, %(outcome)s, %(error_json)s,
        %(started_at_ms)s, %(finished_at_ms)s, %(retry_delay_s)s, %(code_version)s)
ON CONFLICT (call_id, attempt) DO UPDATE SET
    request_id = excluded.request_id, run = excluded.run, outcome = excluded.outcome,
    error_json = excluded.error_json, started_at_ms = excluded.started_at_ms,
    finished_at_ms = excluded.finished_at_ms, retry_delay_s = excluded.retry_delay_s,
    code_version = excluded.code_version

-- name: mark_served
UPDATE calls SET served_run = %(run)s WHERE id = ANY(%(ids)s::text[])

-- name: bump_event_seq
-- A commit takes count event numbers from its request's counter; its statements
-- after this one number their events from it. The UPDATE holds the request's row
-- lock until commit, so the next appender gets the following numbers and readers
-- see them in commit order.
UPDATE requests SET event_seq = event_seq + %(count)s WHERE id = %(request_id)s

-- name: append_events
-- Inserts a batch of events numbered by the counter bump_event_seq moved by count
-- just before (each event's numbers: 1 to count); nothing when there is no such
-- request.
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
SELECT %(request_id)s, r.event_seq - %(count)s + e.number, e.kind, e.payload, e.created_at_ms
FROM requests r,
     unnest(%(numbers)s::bigint[], %(kinds)s::text[], %(payloads)s::text[], %(times)s::float8[])
         AS e (number, kind, payload, created_at_ms)
WHERE r.id = %(request_id)s

-- name: count_unfinished_dispatched
SELECT count(*) FROM ({unfinished_dispatched}) AS unfinished

-- name: end_request
-- Ends a request still open, unless it succeeded and a dispatched call it started
-- is still to finish (that call's commit ends it), and appends its RequestFinished
-- with the next number of its counter. One statement that reads nothing back, so
-- that the commit ending a request is sent whole; its row count: 1 if it ended.
WITH ended AS (
    UPDATE requests SET status = %(status)s, output = %(output)s,
                        failure_reason = %(failure_reason)s, error_json = %(error_json)s,
                        finished_at_ms = %(now_ms)s, event_seq = event_seq + 1
    WHERE id = %(request_id)s AND status IN ('pending', 'running')
      AND NOT (%(succeeded)s AND EXISTS ({unfinished_dispatched}))
    RETURNING event_seq
)
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
SELECT %(request_id)s, event_seq, 'RequestFinished', %(payload)s, %(now_ms)s FROM ended

-- name: unfinished_dispatched
-- A dispatched call the request started that is still to finish: while there is
-- one, a request whose application call succeeded stays open (that call ends it).
SELECT 1 FROM calls
WHERE request_id = %(request_id)s AND dispatched = 1 AND id <> %(request_id)s
  AND status IN ('pending', 'running')

-- name: end_with_checkpoint
-- The commit of a succeeded application call that ends its request, in one
-- statement that the store sends alone: the request's row takes the call's event
-- numbers and one more for its RequestFinished (and its row lock), its output
-- and its end; the call's row and the event go in with it. Only if the request
-- is open and no dispatched call it started is still to finish: otherwise nothing
-- is written, no row comes back, and the store commits the general way, which
-- looks again under the lock. (The EXISTS reads the statement's snapshot, taken
-- before the lock: it may see a call finish late, never one start late, as only
-- the request's own code starts its calls, and that code is done or running.)
-- The answer: the request's columns (and the counter before RequestFinished).
WITH numbered AS (
    UPDATE requests SET status = 'succeeded', output = %(request_output)s,
                        failure_reason = NULL, error_json = NULL,
                        finished_at_ms = %(now_ms)s,
                        event_seq = event_seq + %(event_count)s + 1
    WHERE id = %(request_id)s AND status IN ('pending', 'running')
      AND NOT EXISTS ({unfinished_dispatched})
    RETURNING {request_columns}, event_seq - 1 AS event_seq
), gate AS (SELECT FROM numbered), checkpoint AS (
{success_row}
), finished AS (
    INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
    SELECT %(request_id)s, event_seq + 1, 'RequestFinished', %(payload)s, %(now_ms)s
    FROM numbered
)
SELECT * FROM numbered

-- name: cancel_pending
UPDATE calls SET status = 'cancelled', worker_id = NULL, executor = NULL
WHERE request_id = %(request_id)s AND status = 'pending'

-- name: release_calls
-- A released call runs again, unless its request has ended meanwhile (cancelled).
UPDATE calls SET worker_id = NULL, executor = NULL,
    status = CASE WHEN (SELECT status FROM requests r WHERE r.id = calls.request_id)
                       IN ('pending', 'running') THEN 'pending' ELSE 'cancelled' END
WHERE worker_id = %(worker_id)s
  AND (%(executor)s::integer IS NULL OR executor = %(executor)s::integer)
  AND status = 'running'
RETURNING {call_columns}

-- name: replay_request
-- Locks the request: replays of it start one after the other.
SELECT run, status FROM requests WHERE id = %(request_id)s
FOR NO KEY UPDATE

-- name: fresh_workers
-- Live engines that would take the request's pending run: its owner or, owned
-- by nobody, a serving worker that has loaded its application.
SELECT w.host, w.pid FROM workers w JOIN requests r ON r.id = %(request_id)s
WHERE w.heartbeat_at_ms > %(fresh_after_ms)s
  AND (w.id = r.owner
       OR (r.owner IS NULL
           AND EXISTS (SELECT 1 FROM worker_functions f
                       WHERE f.worker_id = w.id AND f.function = r.application)))

-- name: replay_target
SELECT started_at_ms, parent_id FROM calls
WHERE id = %(call_id)s AND request_id = %(request_id)s

-- name: started_since
SELECT id FROM calls WHERE request_id = %(request_id)s AND started_at_ms >= %(since_ms)s

-- name: start_replay_stale
-- (the calls_keep_events trigger makes rows of the events of the calls it stales.)
UPDATE calls SET status = 'stale', worker_id = NULL, executor = NULL, event_seq = NULL
WHERE request_id = %(request_id)s
  AND (status <> 'succeeded' OR id = ANY(%(forced)s::text[]))

-- name: start_replay_requeue
-- started_at_ms: when the run was queued, until a worker claims it (and sets it).
UPDATE calls SET status = 'pending', dispatched = 1, run = %(run)s, run_attempts = 0,
                 not_before_ms = 0, worker_id = NULL, executor = NULL,
                 started_at_ms = %(now_ms)s, event_seq = NULL
WHERE id = %(request_id)s

-- name: clear_state
DELETE FROM request_state WHERE request_id = %(request_id)s

-- name: start_replay_request
-- started_at_ms and finished_at_ms are the latest run's: the claim of its
-- application call (mark_request_running) sets the start again.
UPDATE requests SET status = 'pending', run = %(run)s, strict_replay = %(strict)s,
                    failure_reason = NULL, error_json = NULL, output = NULL,
                    progress_json = NULL, started_at_ms = NULL, finished_at_ms = NULL, owner = %(owner)s
WHERE id = %(request_id)s

-- name: ancestors
WITH RECURSIVE up (id, parent_id) AS (
    SELECT id, parent_id FROM calls WHERE id = %(parent_id)s
    UNION ALL
    SELECT c.id, c.parent_id FROM calls c JOIN up ON c.id = up.parent_id
)
SELECT id FROM up

-- name: live_holders
SELECT DISTINCT w.host, w.pid FROM calls c JOIN workers w ON w.id = c.worker_id
WHERE c.request_id = %(request_id)s AND c.status = 'running'
  AND w.heartbeat_at_ms > %(fresh_after_ms)s

-- name: lock_workers
SELECT id, host, pid, heartbeat_at_ms FROM workers WHERE id = ANY(%(ids)s::text[])
FOR UPDATE

-- name: heartbeat
INSERT INTO workers (id, host, pid, started_at_ms, heartbeat_at_ms)
VALUES (%(id)s, %(host)s, %(pid)s, %(now_ms)s, %(now_ms)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at_ms = excluded.heartbeat_at_ms

-- name: list_attempts
SELECT call_id, attempt, run, outcome, error_json, started_at_ms, finished_at_ms,
       retry_delay_s, code_version
FROM attempts WHERE request_id = %(request_id)s
UNION ALL
SELECT id, attempts, run, 'success', NULL, started_at_ms, finished_at_ms, NULL,
       code_version
FROM calls WHERE request_id = %(request_id)s AND status = 'succeeded'
ORDER BY 7

-- name: state_set
INSERT INTO request_state (request_id, key, value)
VALUES (%(request_id)s, %(key)s, %(value)s)
ON CONFLICT (request_id, key) DO UPDATE SET value = excluded.value

-- name: due_now
-- Whether a dispatched call of the claimer's scope is due: stops at the first one,
-- where next_due reads every pending call (thousands, under a burst of invokes).
SELECT 1 FROM calls c
WHERE c.status = 'pending' AND c.dispatched = 1 AND c.not_before_ms <= %(now_ms)s
  AND (%(served)s::text[] IS NULL OR c.function = ANY(%(served)s::text[]))
  AND EXISTS (SELECT 1 FROM requests r
              WHERE r.id = c.request_id
                AND r.owner IS NOT DISTINCT FROM %(owner)s::text)
LIMIT 1

-- name: next_due
-- When the next dispatched call of the claimer's scope is due (see claim_any):
-- walks calls_due in time order and stops at the first of the scope.
SELECT c.not_before_ms FROM calls c
WHERE c.status = 'pending' AND c.dispatched = 1
  AND (%(served)s::text[] IS NULL OR c.function = ANY(%(served)s::text[]))
  AND EXISTS (SELECT 1 FROM requests r
              WHERE r.id = c.request_id
                AND r.owner IS NOT DISTINCT FROM %(owner)s::text)
ORDER BY c.not_before_ms
LIMIT 1

-- name: forget_functions
DELETE FROM worker_functions WHERE worker_id = %(worker_id)s

-- name: serve_function
INSERT INTO worker_functions (worker_id, function, code_version)
VALUES (%(worker_id)s, %(function)s, %(code_version)s)

-- name: free_owned_requests
-- The requests of engines that died are any serving worker's now.
UPDATE requests SET owner = NULL
WHERE owner = ANY(%(dead)s::text[]) AND status IN ('pending', 'running')

-- name: workers_holding_work
-- Workers that hold running calls, or own unfinished requests (local runs).
SELECT id, host, pid, heartbeat_at_ms FROM workers
WHERE id IN (SELECT worker_id FROM calls WHERE status = 'running')
   OR id IN (SELECT owner FROM requests WHERE status IN ('pending', 'running'))

-- name: serving_workers
-- Live serving workers that have loaded a function, and their code versions.
SELECT w.id, f.code_version FROM worker_functions f JOIN workers w ON w.id = f.worker_id
WHERE f.function = %(function)s AND w.heartbeat_at_ms > %(fresh_after_ms)s

-- name: unserved_functions
-- Functions of a request's pending dispatched calls that no live serving worker
-- has loaded: the request waits for one.
SELECT DISTINCT c.function FROM calls c
WHERE c.request_id = %(request_id)s AND c.status = 'pending' AND c.dispatched = 1
  AND NOT EXISTS (SELECT 1 FROM worker_functions f JOIN workers w ON w.id = f.worker_id
                  WHERE f.function = c.function
                    AND w.heartbeat_at_ms > %(fresh_after_ms)s)
ORDER BY c.function

-- name: adopt_request
-- A request its running owner finds nobody's (taken for dead, as a heartbeat
-- late by the stale interval is) becomes its own again.
UPDATE requests SET owner = %(owner)s
WHERE id = %(request_id)s AND owner IS NULL AND status IN ('pending', 'running')

-- name: delete_worker
DELETE FROM workers WHERE id = %(worker_id)s

-- name: last_event_seq
SELECT event_seq FROM requests WHERE id = %(request_id)s

-- name: get_request
SELECT {request_columns} FROM requests WHERE id = %(request_id)s

-- name: list_requests
-- Newest first; each filter is off when its value is NULL.
SELECT {request_columns} FROM requests
WHERE (%(application)s::text IS NULL OR application = %(application)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(before_ms)s::float8 IS NULL OR created_at_ms < %(before_ms)s)
ORDER BY created_at_ms DESC LIMIT %(limit)s

-- name: count_requests
SELECT status, count(*) FROM requests GROUP BY status

-- name: delete_request
-- The foreign keys cascade to its calls, their attempts, its events and state.
DELETE FROM requests WHERE id = %(request_id)s RETURNING id

-- name: set_progress
UPDATE requests SET progress_json = %(progress_json)s WHERE id = %(request_id)s

-- name: request_output
-- A request whose application call returned while calls it started still run
-- (they end it); a request that ended meanwhile keeps what it has.
UPDATE requests SET output = %(output)s
WHERE id = %(request_id)s AND status IN ('pending', 'running')

-- name: root_outcome
SELECT c.status, r.output, r.status, r.application FROM calls c JOIN requests r ON r.id = c.request_id
WHERE c.id = %(request_id)s

-- name: get_call
SELECT {call_columns} FROM calls WHERE id = %(call_id)s

-- name: call_output
SELECT output FROM calls WHERE id = %(call_id)s

-- name: call_args
SELECT args FROM calls WHERE id = %(call_id)s

-- name: call_state_writes
SELECT state_writes FROM calls WHERE id = %(call_id)s

-- name: list_calls
SELECT {call_columns} FROM calls WHERE request_id = %(request_id)s
ORDER BY started_at_ms IS NULL, started_at_ms, seq

-- name: list_children
SELECT {call_columns} FROM calls
WHERE request_id = %(request_id)s AND parent_id = %(parent_id)s
  AND kind <> 'map_item' AND kind <> 'reduce_step'
ORDER BY seq

-- name: executors_of_cancelled
SELECT DISTINCT c.executor FROM calls c JOIN requests r ON r.id = c.request_id
WHERE c.worker_id = %(worker_id)s AND c.status = 'running' AND r.status = 'cancelled'

-- name: succeeded_args_in_group
SELECT id, args FROM calls WHERE group_id = %(group_id)s AND status = 'succeeded'

-- name: invalidate_checkpoints
-- (the calls_keep_events trigger makes rows of their events.)
UPDATE calls SET status = 'stale', event_seq = NULL
WHERE status = 'succeeded' AND id = ANY(%(ids)s::text[])

-- name: group_counts
SELECT status, count(*) FROM calls WHERE group_id = %(group_id)s GROUP BY status

-- name: group_outputs
SELECT seq, CASE WHEN status = 'succeeded' THEN output END
FROM calls WHERE group_id = %(group_id)s ORDER BY seq

-- name: state_get
SELECT value FROM request_state WHERE request_id = %(request_id)s AND key = %(key)s

-- name: served_calls
SELECT id FROM calls WHERE request_id = %(request_id)s AND served_run = %(run)s

-- name: failed_calls
-- Calls of the request's latest run that failed for good, in the order they
-- ended (then in start order).
SELECT {call_columns} FROM calls
WHERE request_id = %(request_id)s AND status IN ('failed', 'timed_out')
  AND EXISTS (SELECT 1 FROM attempts a JOIN requests r ON r.id = a.request_id
              WHERE a.call_id = calls.id AND a.run = r.run)
ORDER BY coalesce(finished_at_ms, 0), started_at_ms IS NULL, started_at_ms, seq
