-- Cairn schema 9: when a call row stops numbering its FunctionRunCreated and
-- FunctionRunCompleted (its event_seq changes: a stale or replayed call, a call
-- committed twice), those two events become rows, exactly as _events.call_created
-- and call_succeeded build them (round() of a double rounds half to even, as
-- Python does; duration_ms is written as Python writes a float). A trigger, so
-- that no write can forget it and a checkpoint's commit sends no statement for
-- it: an INSERT fires no UPDATE trigger, an upsert's DO UPDATE does, on the row
-- version it locked (another transaction's commit of the same call included).
CREATE FUNCTION cairn_keep_call_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
    SELECT c.request_id, c.event_seq + e.n, e.kind,
           CASE e.n
           WHEN 0 THEN json_build_object(
               'request_id', c.request_id, 'function_name', c.function,
               'function_run_id', c.id,
               'created_at', to_char(to_timestamp(c.started_us / 1000000) AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS')
                             || '.' || lpad((c.started_us % 1000000)::text, 6, '0') || 'Z',
               'parent_function_run_id', c.parent_id, 'call_kind', c.kind)
           ELSE json_build_object(
               'request_id', c.request_id, 'function_name', c.function,
               'function_run_id', c.id,
               'created_at', to_char(to_timestamp(c.finished_us / 1000000) AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS')
                             || '.' || lpad((c.finished_us % 1000000)::text, 6, '0') || 'Z',
               'outcome', 'success', 'attempt', c.attempts,
               'duration_ms', (CASE WHEN c.duration_ms = trunc(c.duration_ms)
                                    THEN c.duration_ms::text || '.0'
                                    ELSE c.duration_ms::text END)::json)
           END::text,
           CASE e.n WHEN 0 THEN c.started_at_ms ELSE c.finished_at_ms END
    FROM (SELECT OLD.request_id AS request_id, OLD.event_seq AS event_seq,
                 OLD.function AS function, OLD.id AS id, OLD.parent_id AS parent_id,
                 OLD.kind AS kind, OLD.attempts AS attempts,
                 OLD.started_at_ms AS started_at_ms, OLD.finished_at_ms AS finished_at_ms,
                 round(OLD.started_at_ms * 1000)::bigint AS started_us,
                 round(OLD.finished_at_ms * 1000)::bigint AS finished_us,
                 round((OLD.finished_at_ms - OLD.started_at_ms) * 1000) / 1000 AS duration_ms
         ) AS c,
         (VALUES (0, 'FunctionRunCreated'), (1, 'FunctionRunCompleted')) AS e (n, kind)
    ORDER BY e.n;
    RETURN NULL;
END
$$;
CREATE TRIGGER calls_keep_events AFTER UPDATE OF event_seq ON calls FOR EACH ROW
WHEN (OLD.event_seq IS NOT NULL AND NEW.event_seq IS DISTINCT FROM OLD.event_seq)
EXECUTE FUNCTION cairn_keep_call_events();
