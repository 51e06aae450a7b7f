-- Cairn schema 8: a checkpoint's FunctionRunCreated and FunctionRunCompleted are
-- read from its call row, not written as event rows of their own (two B-tree pages
-- fewer per commit: the events table and its key). calls.event_seq is the
-- Created event's number (Completed has the next); NULL when the call's events are
-- rows. Every append numbers its events from requests.event_seq again, the counter
-- a call row's numbers come from (schema 2 read max(events.seq) instead).
ALTER TABLE calls ADD COLUMN event_seq INTEGER;
UPDATE requests
SET event_seq = (SELECT coalesce(max(seq), 0) FROM events WHERE events.request_id = requests.id);
-- A request's calls index holds event_seq too: list_events finds the calls that
-- number events in the index alone, reading only their rows (an in-process call's
-- commit writes its index entry anyway).
DROP INDEX calls_by_request;
CREATE INDEX calls_by_request ON calls (request_id, parent_id, seq, event_seq);
