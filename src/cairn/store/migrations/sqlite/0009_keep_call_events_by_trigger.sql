-- Cairn schema 9: when a call row stops numbering its FunctionRunCreated and
-- FunctionRunCompleted (its event_seq changes: a stale or replayed call, a call
-- committed twice), those two events become rows, exactly as _events.call_created
-- and call_succeeded build them (created_at: the time in microseconds rounded half
-- to even, as Python rounds; duration_ms: rounded to thousandths so). A trigger,
-- so that no write can forget it and a checkpoint's commit runs no statement for
-- it: an INSERT fires no UPDATE trigger, an upsert's DO UPDATE does.
CREATE TRIGGER calls_keep_events AFTER UPDATE OF event_seq ON calls
WHEN OLD.event_seq IS NOT NULL AND NEW.event_seq IS NOT OLD.event_seq
BEGIN
INSERT INTO events (request_id, seq, kind, payload, created_at_ms)
SELECT c.request_id, c.event_seq + e.n, e.kind,
       CASE e.n
       WHEN 0 THEN json_object(
           'request_id', c.request_id, 'function_name', c.function,
           'function_run_id', c.id,
           'created_at', strftime('%Y-%m-%dT%H:%M:%S', c.started_us / 1000000, 'unixepoch')
                         || printf('.%06dZ', c.started_us % 1000000),
           'parent_function_run_id', c.parent_id, 'call_kind', c.kind)
       ELSE json_object(
           'request_id', c.request_id, 'function_name', c.function,
           'function_run_id', c.id,
           'created_at', strftime('%Y-%m-%dT%H:%M:%S', c.finished_us / 1000000, 'unixepoch')
                         || printf('.%06dZ', c.finished_us % 1000000),
           'outcome', 'success', 'attempt', c.attempts,
           'duration_ms', c.duration_us / 1000.0)
       END,
       CASE e.n WHEN 0 THEN c.started_at_ms ELSE c.finished_at_ms END
FROM (SELECT *,
             CAST(sv AS INTEGER) + CASE WHEN sv >= 0
                 THEN (sv - CAST(sv AS INTEGER) > 0.5
                       OR (sv - CAST(sv AS INTEGER) = 0.5 AND CAST(sv AS INTEGER) % 2 <> 0))
                 ELSE -(sv - CAST(sv AS INTEGER) < -0.5
                        OR (sv - CAST(sv AS INTEGER) = -0.5 AND CAST(sv AS INTEGER) % 2 <> 0))
                 END AS started_us,
             CAST(fv AS INTEGER) + CASE WHEN fv >= 0
                 THEN (fv - CAST(fv AS INTEGER) > 0.5
                       OR (fv - CAST(fv AS INTEGER) = 0.5 AND CAST(fv AS INTEGER) % 2 <> 0))
                 ELSE -(fv - CAST(fv AS INTEGER) < -0.5
                        OR (fv - CAST(fv AS INTEGER) = -0.5 AND CAST(fv AS INTEGER) % 2 <> 0))
                 END AS finished_us,
             CAST(dv AS INTEGER) + CASE WHEN dv >= 0
                 THEN (dv - CAST(dv AS INTEGER) > 0.5
                       OR (dv - CAST(dv AS INTEGER) = 0.5 AND CAST(dv AS INTEGER) % 2 <> 0))
                 ELSE -(dv - CAST(dv AS INTEGER) < -0.5
                        OR (dv - CAST(dv AS INTEGER) = -0.5 AND CAST(dv AS INTEGER) % 2 <> 0))
                 END AS duration_us
      FROM (SELECT OLD.request_id AS request_id, OLD.event_seq AS event_seq,
                   OLD.function AS function, OLD.id AS id, OLD.parent_id AS parent_id,
                   OLD.kind AS kind, OLD.attempts AS attempts,
                   OLD.started_at_ms AS started_at_ms, OLD.finished_at_ms AS finished_at_ms,
                   OLD.started_at_ms * 1000 AS sv, OLD.finished_at_ms * 1000 AS fv,
                   (OLD.finished_at_ms - OLD.started_at_ms) * 1000 AS dv)) c
JOIN (SELECT 0 AS n, 'FunctionRunCreated' AS kind
      UNION ALL SELECT 1, 'FunctionRunCompleted') e
ORDER BY e.n; END;
