-- Cairn schema 6: flow control, enforced in the claim across every worker.
-- A request's priority is copied to its calls, so that a claim takes the most
-- urgent due call with one index walk (calls_runnable, priority first).
ALTER TABLE requests ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- The value of the argument a function's concurrency_key names, recorded when the
-- call is queued, so that SQL counts running calls per key.
ALTER TABLE calls ADD COLUMN concurrency_key TEXT;
DROP INDEX calls_runnable;
CREATE INDEX calls_runnable ON calls (priority DESC, not_before_ms)
    WHERE status = 'pending' AND dispatched = 1;
CREATE INDEX calls_running_by_key ON calls (function, concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;
-- One token bucket per rate-limited function: a call takes a token when it
-- starts; tokens come back at per_ms a millisecond, up to burst.
CREATE TABLE rate_limits (
    function       TEXT PRIMARY KEY,
    tokens         REAL NOT NULL,
    updated_at_ms  REAL NOT NULL,
    per_ms         REAL NOT NULL,
    burst          REAL NOT NULL
);
