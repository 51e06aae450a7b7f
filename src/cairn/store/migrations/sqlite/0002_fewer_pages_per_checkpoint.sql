-- Cairn schema 2: a checkpoint's commit writes fewer pages. Every B-tree a commit
-- touches is at least one more page written to the WAL (and, at synchronous=FULL,
-- fsynced). A request's next event seq is now read from the events key inside
-- the write transaction instead of counted in requests.event_seq (the column
-- stays, as in PostgreSQL's schema), and one index serves both a request's calls
-- and a call's children: from eight pages per checkpoint to six.
DROP INDEX calls_by_request;
DROP INDEX calls_by_parent;
CREATE INDEX calls_by_request ON calls (request_id, parent_id, seq);
