-- Cairn schema 8: a checkpoint's FunctionRunCreated and FunctionRunCompleted are
-- read from its call row, not written as event tuples of their own (a heap tuple
-- and an index entry fewer per commit). calls.event_seq is the Created event's
-- number, taken from requests.event_seq (Completed has the next); NULL when the
-- call's events are rows.
ALTER TABLE calls ADD COLUMN event_seq BIGINT;
-- A request's calls index holds event_seq too: list_events finds the calls that
-- number events in the index alone, reading only their rows (an in-process call's
-- commit writes its index entry anyway).
DROP INDEX calls_by_request;
CREATE INDEX calls_by_request ON calls (request_id, parent_id, seq, event_seq);
