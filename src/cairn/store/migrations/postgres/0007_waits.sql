-- Cairn schema 7: durable waits. A call that sleeps or waits for a signal records
-- the wait under its durable id; while it waits, the dispatched call it runs in is
-- parked (pending, due when the timer fires) and holds no executor.
CREATE TABLE waits (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    -- the dispatched call parked on it (NULL until it parks)
    call_id         TEXT,
    kind            TEXT NOT NULL,
    -- the signal's name (a signal wait), the group awaited (children)
    name            TEXT,
    -- when the sleep ends or the signal wait times out (NULL: never)
    due_at_ms       DOUBLE PRECISION,
    -- waiting, done (slept, a signal delivered, the children ended) or timed_out
    status          TEXT NOT NULL,
    created_at_ms   DOUBLE PRECISION NOT NULL,
    finished_at_ms  DOUBLE PRECISION
);
CREATE INDEX waits_by_request ON waits (request_id, status);
-- The waits a parked call is parked on (a claim asks whether it resumes one).
CREATE INDEX waits_by_call ON waits (call_id) WHERE call_id IS NOT NULL;
-- A caller parked on its children: found by the group a finished call was of.
CREATE INDEX waits_on_children ON waits (name) WHERE kind = 'children' AND status = 'waiting';
-- Whether a call is due, by due time alone: parked calls are pending with a due
-- time far ahead (thousands of them), which calls_runnable, priority first, would
-- read one by one at every idle executor's look (0.57 ms at 10,000 on SQLite).
CREATE INDEX calls_due ON calls (not_before_ms) WHERE status = 'pending' AND dispatched = 1;
-- Signals sent to a request, kept until a wait takes one (each goes to one wait).
CREATE TABLE signals (
    request_id      TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    name            TEXT NOT NULL,
    value           BYTEA NOT NULL,
    -- json or pickle
    encoding        TEXT NOT NULL,
    wait_id         TEXT,
    created_at_ms   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE INDEX signals_waiting ON signals (request_id, name, seq) WHERE wait_id IS NULL;
CREATE INDEX signals_by_wait ON signals (wait_id) WHERE wait_id IS NOT NULL;
-- Schedules: an application started on a cron expression. next_at_ms is the
-- next tick; a worker starts it by moving next_at_ms on and creating the
-- request in one transaction, so that a tick starts one request.
CREATE TABLE schedules (
    id              TEXT PRIMARY KEY,
    application     TEXT NOT NULL,
    cron            TEXT NOT NULL,
    input           BYTEA NOT NULL,
    paused          INTEGER NOT NULL DEFAULT 0,
    next_at_ms      DOUBLE PRECISION NOT NULL,
    last_at_ms      DOUBLE PRECISION,
    last_request_id TEXT,
    created_at_ms   DOUBLE PRECISION NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_at_ms) WHERE paused = 0;
