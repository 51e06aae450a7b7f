-- Cairn schema 2: one index serves both a request's calls and a call's children,
-- so a checkpoint updates one index fewer.
DROP INDEX calls_by_request;
DROP INDEX calls_by_parent;
CREATE INDEX calls_by_request ON calls (request_id, parent_id, seq);
