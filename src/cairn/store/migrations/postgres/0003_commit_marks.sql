-- Cairn schema 3: how a commit whose answer was lost is settled. Every write
-- transaction stamps its connection's row with a fresh mark; the row is written
-- if and only if the transaction commits. A transaction id cannot settle it: after
-- a crash, PostgreSQL hands a lost transaction's id to a later one, whose commit
-- then makes the lost one look committed.
CREATE TABLE commit_marks (
    slot text PRIMARY KEY,
    mark bigint NOT NULL,
    used_at timestamptz NOT NULL
);
