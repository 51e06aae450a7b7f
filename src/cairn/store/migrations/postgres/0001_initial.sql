-- Cairn schema 1 on PostgreSQL: the same tables, columns and meaning as SQLite's.
-- Timestamps are milliseconds since the epoch (DOUBLE PRECISION keeps sub-ms order);
-- flags stay INTEGER 0/1 so that both stores share one row mapping (store/_rows.py);
-- JSON stays TEXT, written and read by the store, never queried.
CREATE TABLE cairn_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE requests (
    id              TEXT PRIMARY KEY,
    application     TEXT NOT NULL,
    code_ref        TEXT,
    status          TEXT NOT NULL,
    failure_reason  TEXT,
    error_json      TEXT,
    input           BYTEA NOT NULL,
    output          BYTEA,
    headers_json    TEXT NOT NULL DEFAULT '{}',
    run             INTEGER NOT NULL DEFAULT 1,
    strict_replay   INTEGER NOT NULL DEFAULT 0,
    event_seq       BIGINT NOT NULL DEFAULT 0,
    progress_json   TEXT,
    created_at_ms   DOUBLE PRECISION NOT NULL,
    started_at_ms   DOUBLE PRECISION,
    finished_at_ms  DOUBLE PRECISION
);
CREATE INDEX requests_by_app ON requests (application, created_at_ms);
CREATE INDEX requests_by_created ON requests (created_at_ms);
CREATE INDEX requests_by_status ON requests (status, created_at_ms);

CREATE TABLE calls (
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    parent_id       TEXT,
    seq             INTEGER NOT NULL,
    function        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    group_id        TEXT,
    dispatched      INTEGER NOT NULL,
    status          TEXT NOT NULL,
    args            BYTEA,
    output          BYTEA,
    error_json      TEXT,
    run             INTEGER NOT NULL,
    run_attempts    INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    served_run      INTEGER,
    not_before_ms   DOUBLE PRECISION NOT NULL DEFAULT 0,
    worker_id       TEXT,
    executor        INTEGER,
    state_writes    BYTEA,
    started_at_ms   DOUBLE PRECISION,
    finished_at_ms  DOUBLE PRECISION
);
CREATE INDEX calls_by_request ON calls (request_id, started_at_ms);
CREATE INDEX calls_by_parent ON calls (parent_id, seq);
-- seq last: a map's next pending item is an index walk, not a sort of the rest.
CREATE INDEX calls_by_group ON calls (group_id, status, seq) WHERE group_id IS NOT NULL;
CREATE INDEX calls_runnable ON calls (not_before_ms) WHERE status = 'pending' AND dispatched = 1;
CREATE INDEX calls_by_worker ON calls (worker_id, executor) WHERE status = 'running';
-- max_concurrency counts the running calls of one function under a lock: keep it short.
CREATE INDEX calls_running_by_function ON calls (function) WHERE status = 'running';

-- Failed attempts only: a successful attempt is the call row itself.
CREATE TABLE attempts (
    call_id         TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    request_id      TEXT NOT NULL,
    run             INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    error_json      TEXT,
    started_at_ms   DOUBLE PRECISION,
    finished_at_ms  DOUBLE PRECISION NOT NULL,
    retry_delay_s   DOUBLE PRECISION,
    PRIMARY KEY (call_id, attempt)
);
CREATE INDEX attempts_by_request ON attempts (request_id);

CREATE TABLE events (
    request_id      TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at_ms   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (request_id, seq)
);

CREATE TABLE request_state (
    request_id      TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    value           BYTEA NOT NULL,
    PRIMARY KEY (request_id, key)
);

CREATE TABLE workers (
    id               TEXT PRIMARY KEY,
    host             TEXT NOT NULL,
    pid              INTEGER NOT NULL,
    started_at_ms    DOUBLE PRECISION NOT NULL,
    heartbeat_at_ms  DOUBLE PRECISION NOT NULL
);
