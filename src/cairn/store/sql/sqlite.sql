-- Named queries for the SQLite store: "-- name: x" starts a block.

-- name: call_columns
id, request_id, parent_id, seq, function, kind, group_id, dispatched, status,
error_json, run, run_attempts, attempts, served_run, not_before_ms, worker_id,
executor, state_writes IS NOT NULL, started_at_ms, finished_at_ms

-- name: recorded_children
SELECT id, seq, status, CASE WHEN status = 'succeeded' THEN output END,
       state_writes IS NOT NULL, CASE WHEN status = 'succeeded' THEN args END
FROM calls WHERE request_id = :request_id AND parent_id = :parent_id
  AND dispatched = 0 AND seq >= :from_seq
ORDER BY seq LIMIT :limit

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
VALUES (:id, :application, :code_ref, 'pending', :input, :headers_json, :created_at_ms,
        :owner, :priority)
ON CONFLICT (id) DO NOTHING
RETURNING id

-- name: insert_started_request
-- A request created with its application call claimed (create_claimed): running
-- from now_ms, its counter past the RequestStarted numbered 1. Nothing when the id
-- is taken (its application call's id is then taken too: insert_claimed_call
-- breaks that key and the transaction rolls back).
INSERT INTO requests (id, application, code_ref, status, input, headers_json, created_at_ms,
                      started_at_ms, event_seq, owner, priority)
VALUES (:id, :application, :code_ref, 'running', :input, :headers_json,
        :created_at_ms, :now_ms, 1, :owner, :priority)
ON CONFLICT (id) DO NOTHING

-- name: insert_claimed_call
-- The application call of insert_started_request, held by its executor.
INSERT INTO calls (id, request_id, parent_id, seq, function, kind, group_id, dispatched,
                   status, args, run, not_before_ms, concurrency_key, priority, worker_id,
                   executor, started_at_ms)
VALUES (:id, :request_id, :parent_id, :seq, :function, :kind,
        :group_id, :dispatched, 'running', :args, 1, 0, :concurrency_key,
        :priority, :worker_id, :executor, :now_ms)

-- name: create_claimed
-- A request created with its application call claimed and its RequestStarted
-- numbered 1 (the application call's id is the request's: one id serves both
-- rows): three statements, SQLite having no INSERT inside a WITH. A taken id
-- inserts no request, and the call breaks its key: the transaction rolls back.
{insert_started_request};
{insert_claimed_call};
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
VALUES (:id, 1, :event_kind, :event_payload, :now_ms)

-- name: insert_pending_call
-- A call has its request's priority, for claim_any to order by with an index.
INSERT INTO calls (id, request_id, parent_id, seq, function, kind, group_id, dispatched,
                   status, args, run, not_before_ms, concurrency_key, priority)
VALUES (:id, :request_id, :parent_id, :seq, :function, :kind, :group_id, :dispatched,
        'pending', :args, :run, :not_before_ms, :concurrency_key,
        COALESCE((SELECT priority FROM requests WHERE id = :request_id), 0))
ON CONFLICT (id) DO UPDATE SET
    status = 'pending', run = excluded.run, run_attempts = 0,
    not_before_ms = excluded.not_before_ms, args = excluded.args, dispatched = 1,
    concurrency_key = excluded.concurrency_key,
    error_json = NULL, worker_id = NULL, executor = NULL
WHERE calls.status <> 'succeeded' AND (calls.run < excluded.run OR calls.status = 'stale')

-- name: claim_any
-- Of the claimer's scope: requests it owns (:owner, a local run's engine) or
-- nobody's (:owner NULL, a serving worker), functions it has loaded (:served,
-- NULL for all), and of no retry still kept for the executor that ran it (see
-- RETRY_AFFINITY_MS). Not of :full functions (at their cap or out of tokens), nor of
-- :full_keys (function, key) pairs at their cap. Most urgent request first.
UPDATE calls SET status = 'running', worker_id = :worker_id, executor = :executor,
                 started_at_ms = :now_ms
WHERE id = (SELECT id FROM calls
            WHERE status = 'pending' AND dispatched = 1 AND not_before_ms <= :now_ms
              AND (worker_id IS NULL
                   OR (worker_id = :worker_id AND executor = :executor)
                   OR not_before_ms <= :now_ms - :affinity_ms)
              AND function NOT IN (SELECT value FROM json_each(:full))
              AND (concurrency_key IS NULL OR function || char(31) || concurrency_key
                   NOT IN (SELECT value FROM json_each(:full_keys)))
              AND (:served IS NULL
                   OR function IN (SELECT value FROM json_each(:served)))
              AND EXISTS (SELECT 1 FROM requests r
                          WHERE r.id = calls.request_id
                            AND r.status IN ('pending', 'running')
                            AND r.owner IS :owner)
            ORDER BY priority DESC, not_before_ms LIMIT 1)
RETURNING {claimed_columns}

-- name: due_now
-- Whether a dispatched call of the claimer's scope is due.
SELECT 1 FROM calls
WHERE status = 'pending' AND dispatched = 1 AND not_before_ms <= :now_ms
  AND (:served IS NULL OR function IN (SELECT value FROM json_each(:served)))
  AND EXISTS (SELECT 1 FROM requests r
              WHERE r.id = calls.request_id AND r.owner IS :owner)
LIMIT 1

-- name: claim_in_group
UPDATE calls SET status = 'running', worker_id = :worker_id, executor = :executor,
                 started_at_ms = :now_ms
WHERE id = (SELECT id FROM calls
            WHERE group_id = :group_id AND status = 'pending' AND dispatched = 1
              AND not_before_ms <= :now_ms
              AND function NOT IN (SELECT value FROM json_each(:full))
              AND (concurrency_key IS NULL OR function || char(31) || concurrency_key
                   NOT IN (SELECT value FROM json_each(:full_keys)))
              AND (:served IS NULL
                   OR function IN (SELECT value FROM json_each(:served)))
            ORDER BY seq LIMIT 1)
RETURNING {claimed_columns}

-- name: claim_batch_in_group
UPDATE calls SET status = 'running', worker_id = :worker_id, executor = :executor,
                 started_at_ms = :now_ms
WHERE id IN (SELECT id FROM calls
             WHERE group_id = :group_id AND status = 'pending' AND dispatched = 1
               AND not_before_ms <= :now_ms
               AND (:served IS NULL
                    OR function IN (SELECT value FROM json_each(:served)))
             ORDER BY seq LIMIT :limit)
RETURNING {claimed_columns}

-- name: claim_one
UPDATE calls SET status = 'running', worker_id = :worker_id, executor = :executor,
                 started_at_ms = :now_ms
WHERE id = :call_id AND status = 'pending' AND dispatched = 1 AND not_before_ms <= :now_ms
  AND function NOT IN (SELECT value FROM json_each(:full))
  AND (concurrency_key IS NULL OR function || char(31) || concurrency_key
       NOT IN (SELECT value FROM json_each(:full_keys)))
  AND (:served IS NULL OR function IN (SELECT value FROM json_each(:served)))
RETURNING {claimed_columns}

-- name: running_counts
SELECT function, count(*) FROM calls
WHERE status = 'running' AND function IN (SELECT value FROM json_each(:names))
GROUP BY function

-- name: bucket_levels
SELECT function, tokens, updated_at_ms FROM rate_limits
WHERE function IN (SELECT value FROM json_each(:names))

-- name: take_token
-- A call of a rate-limited function starts: take a token, refilled up to now;
-- no row back when none is left. Another host's clock may be behind: time
-- never runs backwards for a bucket.
INSERT INTO rate_limits (function, tokens, updated_at_ms, per_ms, burst)
VALUES (:function, :burst - 1, :now_ms, :per_ms, :burst)
ON CONFLICT (function) DO UPDATE SET
    tokens = min(:burst, tokens + max(0, :now_ms - updated_at_ms) * :per_ms) - 1,
    updated_at_ms = max(updated_at_ms, :now_ms), per_ms = :per_ms, burst = :burst
WHERE min(:burst, tokens + max(0, :now_ms - updated_at_ms) * :per_ms) >= :one
RETURNING tokens

-- name: running_key_counts
SELECT function, concurrency_key, count(*) FROM calls
WHERE status = 'running' AND concurrency_key IS NOT NULL
  AND function IN (SELECT value FROM json_each(:names))
GROUP BY function, concurrency_key

-- name: flow_waits
-- A request's pending dispatched calls that flow control holds back: of a
-- function whose bucket is out of tokens now, or of a key with running calls.
SELECT DISTINCT c.function, 'rate', NULL FROM calls c
JOIN rate_limits b ON b.function = c.function
WHERE c.request_id = :request_id AND c.status = 'pending' AND c.dispatched = 1
  AND min(b.burst, b.tokens + max(0, :now_ms - b.updated_at_ms) * b.per_ms) < :one
UNION
SELECT DISTINCT c.function, 'key', c.concurrency_key FROM calls c
WHERE c.request_id = :request_id AND c.status = 'pending' AND c.dispatched = 1
  AND c.concurrency_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM calls o
              WHERE o.status = 'running' AND o.function = c.function
                AND o.concurrency_key = c.concurrency_key)
ORDER BY 1, 2, 3

-- name: lock_key
-- Writers are serialized already: nothing to lock.
SELECT 1

-- name: count_running_key
SELECT count(*) FROM calls
WHERE status = 'running' AND function = :function AND concurrency_key = :key

-- name: mark_request_running
UPDATE requests SET status = 'running', started_at_ms = COALESCE(started_at_ms, :now_ms)
WHERE id = :request_id AND status = 'pending'

-- name: mark_running
INSERT INTO calls (id, request_id, parent_id, seq, function, kind, group_id, dispatched,
                   status, run, worker_id, executor, started_at_ms, concurrency_key)
VALUES (:id, :request_id, :parent_id, :seq, :function, :kind, :group_id, :dispatched,
        'running', :run, :worker_id, :executor, :started_at_ms, :concurrency_key)
ON CONFLICT (id) DO UPDATE SET
    status = 'running', run = excluded.run, worker_id = excluded.worker_id,
    concurrency_key = excluded.concurrency_key,
    executor = excluded.executor, started_at_ms = excluded.started_at_ms
WHERE calls.status IN ('pending', 'stale')
   OR (calls.run < excluded.run AND calls.status <> 'succeeded')

-- name: upsert_success
-- A succeeded call's row, its event numbers taken by a bump_event_seq before it in
-- the same transaction.
WITH numbered AS (SELECT event_seq FROM requests WHERE id = :request_id),
gate AS (SELECT 1)
{success_row}

-- name: commit_checkpoint
-- One call's checkpoint with its events' numbers: the bump, then the row (two
-- statements, SQLite having no UPDATE inside a WITH), in one transaction.
UPDATE requests SET event_seq = event_seq + :event_count WHERE id = :request_id;
{upsert_success}

-- name: success_row
-- event_seq: the number of the call's FunctionRunCreated when its events are read
-- from the row (:event_number of the :event_count numbers this commit took from
-- the request's counter, which ``numbered`` holds after the bump), else NULL.
-- Written once per row of ``gate``: (SELECT 1), or none where a statement holds
-- the row back. (WHERE true: an upsert's SELECT needs a WHERE, for the parser.)
INSERT INTO calls (id, request_id, parent_id, seq, function, kind, group_id, dispatched,
                   status, args, output, run, run_attempts, attempts, state_writes,
                   started_at_ms, finished_at_ms, code_version, event_seq)
SELECT :id, :request_id, :parent_id, :seq, :function, :kind, :group_id, :dispatched,
       'succeeded', :args, :output, :run, :run_attempts, :attempts, :state_writes,
       :started_at_ms, :finished_at_ms, :code_version,
       CASE WHEN :event_number IS NOT NULL
            THEN (SELECT event_seq FROM numbered) - :event_count + :event_number END
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
VALUES (:id, :request_id, :parent_id, :seq, :function, :kind, :group_id, :dispatched,
        :status, :args, :error_json, :run, :run_attempts, :attempts, :not_before_ms,
        :started_at_ms, :finished_at_ms)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, args = COALESCE(excluded.args, calls.args),
    error_json = excluded.error_json, run = excluded.run,
    run_attempts = excluded.run_attempts, attempts = excluded.attempts,
    not_before_ms = excluded.not_before_ms,
    started_at_ms = COALESCE(excluded.started_at_ms, calls.started_at_ms),
    finished_at_ms = excluded.finished_at_ms,
    worker_id = CASE WHEN :retry_here = 1 THEN calls.worker_id END,
    executor = CASE WHEN :retry_here = 1 THEN calls.executor END
WHERE calls.status <> 'succeeded'

-- name: insert_attempt
INSERT OR REPLACE INTO attempts (call_id, attempt, request_id, run, outcome, error_json,
                                 started_at_ms, finished_at_ms, retry_delay_s,
                                 code_version)
VALUES (:call_id, :attempt, :request_id, :run, :outcome, :error_json, :started_at_ms,
        :finished_at_ms, :retry_delay_s, :code_version)

-- name: mark_served
UPDATE calls SET served_run = :run WHERE id IN (SELECT value FROM json_each(:ids))

-- name: bump_event_seq
-- A commit takes :count event numbers from its request's counter (read inside the
-- write transaction, which no other writer shares); its statements after this one
-- number their events from it.
UPDATE requests SET event_seq = event_seq + :count WHERE id = :request_id

-- name: append_events
-- Inserts a batch of events numbered by the counter bump_event_seq moved by
-- :count just before (each event's :numbers: 1 to :count); nothing when there is
-- no such request.
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
SELECT :request_id, r.event_seq - :count + n.value, k.value, p.value, t.value
FROM requests r, json_each(:numbers) n
JOIN json_each(:kinds) k ON k.key = n.key
JOIN json_each(:payloads) p ON p.key = n.key
JOIN json_each(:times) t ON t.key = n.key
WHERE r.id = :request_id
ORDER BY n.key

-- name: count_unfinished_dispatched
SELECT count(*) FROM ({unfinished_dispatched}) AS unfinished

-- name: end_request
-- Ends a request still open, unless it succeeded and a dispatched call it started
-- is still to finish (that call's commit ends it), and appends its RequestFinished
-- with the next number of its counter. Two statements (SQLite has no UPDATE in a
-- WITH): the INSERT runs only where the UPDATE changed the row (changes(), of the
-- statement completed last). The last one's row count: 1 if it ended.
UPDATE requests SET status = :status, output = :output, failure_reason = :failure_reason,
                    error_json = :error_json, finished_at_ms = :now_ms,
                    event_seq = event_seq + 1
WHERE id = :request_id AND status IN ('pending', 'running')
  AND NOT (:succeeded AND EXISTS ({unfinished_dispatched}));
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
SELECT :request_id, event_seq, 'RequestFinished', :payload, :now_ms FROM requests
WHERE id = :request_id AND changes() = 1

-- name: unfinished_dispatched
-- A dispatched call the request started that is still to finish: while there is
-- one, a request whose application call succeeded stays open (that call ends it).
SELECT 1 FROM calls
WHERE request_id = :request_id AND dispatched = 1 AND id <> :request_id
  AND status IN ('pending', 'running')

-- name: end_with_checkpoint
-- The commit of a succeeded application call that ends its request: the
-- request's row takes the call's event numbers and one more for its
-- RequestFinished, its output and its end, then the call's row and the event go
-- in. Only if the request is open and no dispatched call it started is still to
-- finish: otherwise nothing is written, no row comes back, and the store commits
-- the general way. Each statement after the first runs only where the one
-- completed before it changed a row (changes()). The answer: the request.
UPDATE requests SET status = 'succeeded', output = :request_output,
                    failure_reason = NULL, error_json = NULL, finished_at_ms = :now_ms,
                    event_seq = event_seq + :event_count + 1
WHERE id = :request_id AND status IN ('pending', 'running')
  AND NOT EXISTS ({unfinished_dispatched});
WITH numbered AS (
    SELECT event_seq - 1 AS event_seq FROM requests
    WHERE id = :request_id AND changes() = 1
), gate AS (SELECT 1 FROM numbered)
{success_row};
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
SELECT :request_id, event_seq, 'RequestFinished', :payload, :now_ms FROM requests
WHERE id = :request_id AND changes() = 1;
SELECT {request_columns} FROM requests WHERE id = :request_id AND changes() = 1

-- name: cancel_pending
UPDATE calls SET status = 'cancelled', worker_id = NULL, executor = NULL
WHERE request_id = :request_id AND status = 'pending'

-- name: release_calls
-- A released call runs again, unless its request has ended meanwhile (cancelled).
UPDATE calls SET worker_id = NULL, executor = NULL,
    status = CASE WHEN (SELECT status FROM requests r WHERE r.id = calls.request_id)
                       IN ('pending', 'running') THEN 'pending' ELSE 'cancelled' END
WHERE worker_id = :worker_id AND (:executor IS NULL OR executor = :executor)
  AND status = 'running'
RETURNING {call_columns}

-- name: replay_request
-- Read inside the replay's write transaction, which no other writer shares.
SELECT run, status FROM requests WHERE id = :request_id

-- name: live_holders
SELECT DISTINCT w.host, w.pid FROM calls c JOIN workers w ON w.id = c.worker_id
WHERE c.request_id = :request_id AND c.status = 'running'
  AND w.heartbeat_at_ms > :fresh_after_ms

-- name: fresh_workers
-- Live engines that would take the request's pending run: its owner or, owned
-- by nobody, a serving worker that has loaded its application.
SELECT w.host, w.pid FROM workers w JOIN requests r ON r.id = :request_id
WHERE w.heartbeat_at_ms > :fresh_after_ms
  AND (w.id = r.owner
       OR (r.owner IS NULL
           AND EXISTS (SELECT 1 FROM worker_functions f
                       WHERE f.worker_id = w.id AND f.function = r.application)))

-- name: replay_target
SELECT started_at_ms, parent_id FROM calls WHERE id = :call_id AND request_id = :request_id

-- name: started_since
SELECT id FROM calls WHERE request_id = :request_id AND started_at_ms >= :since_ms

-- name: ancestors
WITH RECURSIVE up (id, parent_id) AS (
    SELECT id, parent_id FROM calls WHERE id = :parent_id
    UNION ALL
    SELECT c.id, c.parent_id FROM calls c JOIN up ON c.id = up.parent_id
)
SELECT id FROM up

-- name: start_replay_stale
-- (the calls_keep_events trigger makes rows of the events of the calls it stales.)
UPDATE calls SET status = 'stale', worker_id = NULL, executor = NULL, event_seq = NULL
WHERE request_id = :request_id
  AND (status <> 'succeeded' OR id IN (SELECT value FROM json_each(:forced)))

-- name: start_replay_requeue
-- started_at_ms: when the run was queued, until a worker claims it (and sets it).
UPDATE calls SET status = 'pending', dispatched = 1, run = :run, run_attempts = 0,
                 not_before_ms = 0, worker_id = NULL, executor = NULL,
                 started_at_ms = :now_ms, event_seq = NULL
WHERE id = :request_id

-- name: clear_state
DELETE FROM request_state WHERE request_id = :request_id

-- name: start_replay_request
-- started_at_ms and finished_at_ms are the latest run's: the claim of its
-- application call (mark_request_running) sets the start again.
UPDATE requests SET status = 'pending', run = :run, strict_replay = :strict,
                    failure_reason = NULL, error_json = NULL, output = NULL,
                    progress_json = NULL, started_at_ms = NULL, finished_at_ms = NULL, owner = :owner
WHERE id = :request_id

-- name: forget_functions
DELETE FROM worker_functions WHERE worker_id = :worker_id

-- name: serve_function
INSERT INTO worker_functions (worker_id, function, code_version)
VALUES (:worker_id, :function, :code_version)

-- name: free_owned_requests
-- The requests of engines that died are any serving worker's now.
UPDATE requests SET owner = NULL
WHERE owner IN (SELECT value FROM json_each(:dead))
  AND status IN ('pending', 'running')

-- name: workers_holding_work
-- Workers that hold running calls, or own unfinished requests (local runs).
SELECT id, host, pid, heartbeat_at_ms FROM workers
WHERE id IN (SELECT worker_id FROM calls WHERE status = 'running')
   OR id IN (SELECT owner FROM requests WHERE status IN ('pending', 'running'))

-- name: serving_workers
-- Live serving workers that have loaded a function, and their code versions.
SELECT w.id, f.code_version FROM worker_functions f JOIN workers w ON w.id = f.worker_id
WHERE f.function = :function AND w.heartbeat_at_ms > :fresh_after_ms

-- name: unserved_functions
-- Functions of a request's pending dispatched calls that no live serving worker
-- has loaded: the request waits for one.
SELECT DISTINCT c.function FROM calls c
WHERE c.request_id = :request_id AND c.status = 'pending' AND c.dispatched = 1
  AND NOT EXISTS (SELECT 1 FROM worker_functions f JOIN workers w ON w.id = f.worker_id
                  WHERE f.function = c.function
                    AND w.heartbeat_at_ms > :fresh_after_ms)
ORDER BY c.function

-- name: list_attempts
-- Failed attempts have rows of their own; a succeeded call's last attempt is the
-- call's row.
SELECT call_id, attempt, run, outcome, error_json, started_at_ms, finished_at_ms,
       retry_delay_s, code_version
FROM attempts WHERE request_id = :request_id
UNION ALL
SELECT id, attempts, run, 'success', NULL, started_at_ms, finished_at_ms, NULL,
       code_version
FROM calls WHERE request_id = :request_id AND status = 'succeeded'
ORDER BY 7

-- name: adopt_request
-- A request its running owner finds nobody's (taken for dead, as a heartbeat
-- late by the stale interval is) becomes its own again.
UPDATE requests SET owner = :owner
WHERE id = :request_id AND owner IS NULL AND status IN ('pending', 'running')

-- name: claimed_columns
-- A claimed call, its arguments and its request's run (SQLite's RETURNING sees
-- only the updated table: the request's columns come by subqueries).
id, request_id, parent_id, seq, function, kind, group_id, dispatched, status,
error_json, run, run_attempts, attempts, served_run, not_before_ms, worker_id,
executor, state_writes IS NOT NULL, started_at_ms, finished_at_ms, args,
(SELECT r.run FROM requests r WHERE r.id = calls.request_id),
(SELECT r.strict_replay FROM requests r WHERE r.id = calls.request_id),
(SELECT r.application FROM requests r WHERE r.id = calls.request_id),
concurrency_key

-- name: due_call
SELECT 1 FROM calls
WHERE id = :call_id AND status = 'pending' AND dispatched = 1
  AND not_before_ms <= :now_ms

-- name: due_in_group
SELECT 1 FROM calls
WHERE group_id = :group_id AND status = 'pending' AND dispatched = 1
  AND not_before_ms <= :now_ms
LIMIT 1

-- name: next_due
-- When the next dispatched call of the claimer's scope is due (see claim_any).
SELECT not_before_ms FROM calls
WHERE status = 'pending' AND dispatched = 1
  AND (:served IS NULL OR function IN (SELECT value FROM json_each(:served)))
  AND EXISTS (SELECT 1 FROM requests r
              WHERE r.id = calls.request_id AND r.owner IS :owner)
ORDER BY not_before_ms
LIMIT 1

-- name: lock_function
-- Writers are serialized already: nothing to lock.
SELECT 1

-- name: count_running
SELECT count(*) FROM calls WHERE status = 'running' AND function = :function

-- name: lock_request
-- Writers are serialized already: nothing to lock, the request read as
-- PostgreSQL's lock_request reads it.
SELECT application, status FROM requests WHERE id = :request_id

-- name: lock_workers
-- Read inside the write transaction, which no other writer shares.
SELECT id, host, pid, heartbeat_at_ms FROM workers
WHERE id IN (SELECT value FROM json_each(:ids))

-- name: heartbeat
INSERT INTO workers (id, host, pid, started_at_ms, heartbeat_at_ms)
VALUES (:id, :host, :pid, :now_ms, :now_ms)
ON CONFLICT (id) DO UPDATE SET heartbeat_at_ms = excluded.heartbeat_at_ms

-- name: state_set
INSERT OR REPLACE INTO request_state (request_id, key, value)
VALUES (:request_id, :key, :value)

-- name: delete_worker
DELETE FROM workers WHERE id = :worker_id

-- name: last_event_seq
SELECT event_seq FROM requests WHERE id = :request_id

-- name: get_request
SELECT {request_columns} FROM requests WHERE id = :request_id

-- name: list_requests
-- Newest first; each filter is off when its value is NULL.
SELECT {request_columns} FROM requests
WHERE (:application IS NULL OR application = :application)
  AND (:status IS NULL OR status = :status)
  AND (:before_ms IS NULL OR created_at_ms < :before_ms)
ORDER BY created_at_ms DESC LIMIT :limit

-- name: count_requests
SELECT status, count(*) FROM requests GROUP BY status

-- name: delete_request
-- The foreign keys cascade to its calls, their attempts, its events and state.
DELETE FROM requests WHERE id = :request_id RETURNING id

-- name: set_progress
UPDATE requests SET progress_json = :progress_json WHERE id = :request_id

-- name: request_output
-- A request whose application call returned while calls it started still run
-- (they end it); a request that ended meanwhile keeps what it has.
UPDATE requests SET output = :output
WHERE id = :request_id AND status IN ('pending', 'running')

-- name: root_outcome
SELECT c.status, r.output, r.status, r.application FROM calls c JOIN requests r ON r.id = c.request_id
WHERE c.id = :request_id

-- name: get_call
SELECT {call_columns} FROM calls WHERE id = :call_id

-- name: call_output
SELECT output FROM calls WHERE id = :call_id

-- name: call_args
SELECT args FROM calls WHERE id = :call_id

-- name: call_state_writes
SELECT state_writes FROM calls WHERE id = :call_id

-- name: list_calls
SELECT {call_columns} FROM calls WHERE request_id = :request_id
ORDER BY started_at_ms IS NULL, started_at_ms, seq

-- name: list_children
SELECT {call_columns} FROM calls
WHERE request_id = :request_id AND parent_id = :parent_id
  AND kind <> 'map_item' AND kind <> 'reduce_step'
ORDER BY seq

-- name: executors_of_cancelled
SELECT DISTINCT c.executor FROM calls c JOIN requests r ON r.id = c.request_id
WHERE c.worker_id = :worker_id AND c.status = 'running' AND r.status = 'cancelled'

-- name: succeeded_args_in_group
SELECT id, args FROM calls WHERE group_id = :group_id AND status = 'succeeded'

-- name: invalidate_checkpoints
-- (the calls_keep_events trigger makes rows of their events.)
UPDATE calls SET status = 'stale', event_seq = NULL
WHERE status = 'succeeded' AND id IN (SELECT value FROM json_each(:ids))

-- name: group_counts
SELECT status, count(*) FROM calls WHERE group_id = :group_id GROUP BY status

-- name: group_outputs
SELECT seq, CASE WHEN status = 'succeeded' THEN output END
FROM calls WHERE group_id = :group_id ORDER BY seq

-- name: state_get
SELECT value FROM request_state WHERE request_id = :request_id AND key = :key

-- name: served_calls
SELECT id FROM calls WHERE request_id = :request_id AND served_run = :run

-- name: failed_calls
-- Calls of the request's latest run that failed for good, in the order they
-- ended (then in start order).
SELECT {call_columns} FROM calls
WHERE request_id = :request_id AND status IN ('failed', 'timed_out')
  AND EXISTS (SELECT 1 FROM attempts a JOIN requests r ON r.id = a.request_id
              WHERE a.call_id = calls.id AND a.run = r.run)
ORDER BY coalesce(finished_at_ms, 0), started_at_ms IS NULL, started_at_ms, seq
