-- Named reads of the dashboard on PostgreSQL (store/_browse.py): a request's calls a
-- page at a time, map groups tallied, runs, progress and request searches, each
-- answered by SQL from the indexes instead of reading every call of a request.
-- "{call_columns}" is postgres.sql's call_columns block.

-- name: entries
-- A parent's children in start order, each map's items folded into one entry
-- (keyed by its group id): the call tree's rows, a page at a time.
SELECT key, folded FROM (
    SELECT id AS key, 0 AS folded, started_at_ms AS first_ms, seq FROM calls
    WHERE request_id = %(request_id)s AND parent_id IS NOT DISTINCT FROM %(parent_id)s::text
      AND (kind <> 'map_item' OR group_id IS NULL)
    UNION ALL
    SELECT group_id, 1, min(started_at_ms), min(seq) FROM calls
    WHERE request_id = %(request_id)s AND parent_id IS NOT DISTINCT FROM %(parent_id)s::text
      AND kind = 'map_item' AND group_id IS NOT NULL
    GROUP BY group_id
) AS entries
ORDER BY first_ms IS NULL, first_ms, seq, key
LIMIT %(limit)s OFFSET %(offset)s

-- name: entry_count
SELECT (SELECT count(*) FROM calls
        WHERE request_id = %(request_id)s AND parent_id IS NOT DISTINCT FROM %(parent_id)s::text
          AND (kind <> 'map_item' OR group_id IS NULL))
     + (SELECT count(DISTINCT group_id) FROM calls
        WHERE request_id = %(request_id)s AND parent_id IS NOT DISTINCT FROM %(parent_id)s::text
          AND kind = 'map_item' AND group_id IS NOT NULL)

-- name: calls_by_id
SELECT {call_columns},
       EXISTS (SELECT 1 FROM calls k WHERE k.request_id = calls.request_id
               AND k.parent_id = calls.id)
FROM calls WHERE id = ANY(%(ids)s::text[])

-- name: group_tally
-- Per map group, run and status: how many items, the span of their latest
-- attempts, how many the given run served from checkpoints.
SELECT group_id, run, status, count(*), min(function), min(started_at_ms),
       max(finished_at_ms), sum(CASE WHEN served_run = %(run)s THEN 1 ELSE 0 END)
FROM calls
WHERE group_id = ANY(%(ids)s::text[]) AND kind = 'map_item'
GROUP BY group_id, run, status

-- name: group_items
SELECT {call_columns},
       EXISTS (SELECT 1 FROM calls k WHERE k.request_id = calls.request_id
               AND k.parent_id = calls.id)
FROM calls
WHERE group_id = %(group_id)s AND kind = 'map_item'
  AND (%(problems)s = 0 OR status IN ('failed', 'timed_out', 'cancelled', 'stale'))
ORDER BY seq
LIMIT %(limit)s OFFSET %(offset)s

-- name: attempts_of
SELECT call_id, attempt, run, outcome, error_json, started_at_ms, finished_at_ms,
       retry_delay_s, code_version
FROM attempts WHERE call_id = ANY(%(ids)s::text[])
ORDER BY call_id, attempt

-- name: call_counts
-- Ran in the given run: started in it and ended (a checkpoint or a failure);
-- served: its checkpoint was taken in that run.
SELECT count(*),
       coalesce(sum(CASE WHEN run = %(run)s
                          AND status IN ('succeeded', 'failed', 'timed_out')
                     THEN 1 ELSE 0 END), 0),
       coalesce(sum(CASE WHEN served_run = %(run)s AND run <> %(run)s THEN 1 ELSE 0 END), 0),
       coalesce(sum(CASE WHEN status IN ('failed', 'timed_out', 'cancelled')
                     THEN 1 ELSE 0 END), 0)
FROM calls WHERE request_id = %(request_id)s

-- name: calls_where
-- A request's calls in start order: those that ran in the given run only, or
-- only those that did not succeed.
SELECT {call_columns},
       EXISTS (SELECT 1 FROM calls k WHERE k.request_id = calls.request_id
               AND k.parent_id = calls.id)
FROM calls
WHERE request_id = %(request_id)s
  AND (%(ran)s = 0 OR (run = %(run)s AND status IN ('succeeded', 'failed', 'timed_out')))
  AND (%(problems)s = 0 OR status IN ('failed', 'timed_out', 'cancelled'))
ORDER BY started_at_ms IS NULL, started_at_ms, seq
LIMIT %(limit)s OFFSET %(offset)s

-- name: run_events
SELECT seq, kind, payload, created_at_ms FROM events
WHERE request_id = %(request_id)s AND kind IN ('RequestStarted', 'RequestFinished')
ORDER BY seq

-- name: progress_events
-- Newest first, before a sequence number, of one call if one is given.
SELECT request_id, seq, kind, payload, created_at_ms FROM events
WHERE request_id = %(request_id)s AND seq < %(before)s AND kind = 'RequestProgressUpdated'
  AND (%(call_id)s::text IS NULL OR (payload::json ->> 'function_run_id') = %(call_id)s)
ORDER BY seq DESC
LIMIT %(limit)s

-- name: rerun_count
-- The calls a replay runs again: those that did not succeed, and (a replay from
-- a call) those started since it.
SELECT count(*) FROM calls
WHERE request_id = %(request_id)s
  AND (status <> 'succeeded'
       OR (%(since)s::double precision IS NOT NULL AND started_at_ms >= %(since)s))

-- name: code_versions
SELECT id, code_version FROM calls WHERE id = ANY(%(ids)s::text[])

-- name: request_filter
-- The requests a search asks for; every condition is off when its value is NULL.
-- "text" is a request id's prefix or a piece of its input (as stored, or with
-- JSON's escapes: "needle_json").
(%(application)s::text IS NULL OR application = %(application)s)
AND (%(status)s::text IS NULL OR status = %(status)s)
AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
AND (%(text)s::text IS NULL OR left(id, length(%(text)s)) = %(text)s
     OR position(%(needle)s::bytea in input) > 0
     OR position(%(needle_json)s::bytea in input) > 0)
AND (%(from_ms)s::double precision IS NULL OR created_at_ms >= %(from_ms)s)
AND (%(to_ms)s::double precision IS NULL OR created_at_ms < %(to_ms)s)

-- name: search_newest
SELECT {request_columns} FROM requests WHERE {request_filter}
ORDER BY created_at_ms DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s

-- name: search_oldest
SELECT {request_columns} FROM requests WHERE {request_filter}
ORDER BY created_at_ms, id LIMIT %(limit)s OFFSET %(offset)s

-- name: search_longest
-- The latest run's duration; requests still running (or not started) last.
SELECT {request_columns} FROM requests WHERE {request_filter}
ORDER BY finished_at_ms IS NULL OR started_at_ms IS NULL,
         finished_at_ms - started_at_ms DESC, created_at_ms DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s

-- name: search_count
SELECT count(*) FROM requests WHERE {request_filter}

-- name: search_ids
-- Oldest first, after a (created_at_ms, id) cursor: a bulk action's next page.
SELECT id, application, created_at_ms FROM requests WHERE {request_filter}
  AND (%(after_ms)s::double precision IS NULL OR created_at_ms > %(after_ms)s
       OR (created_at_ms = %(after_ms)s AND id > %(after_id)s))
ORDER BY created_at_ms, id LIMIT %(limit)s

-- name: stats_counts
-- The dashboard's per-application figures: requests created since from_ms.
SELECT application, status, count(*) FROM requests
WHERE created_at_ms >= %(from_ms)s GROUP BY application, status

-- name: stats_durations
-- Their latest runs' durations, the newest `limit` (percentiles of a busy day
-- come from its newest requests, not from millions of rows).
SELECT application, finished_at_ms - started_at_ms FROM requests
WHERE created_at_ms >= %(from_ms)s
  AND finished_at_ms IS NOT NULL AND started_at_ms IS NOT NULL
ORDER BY created_at_ms DESC LIMIT %(limit)s

-- name: stream_chunks
-- Streamed output (ctx.stream.write), newest first, up to a sequence number.
SELECT request_id, seq, kind, payload, created_at_ms FROM events
WHERE request_id = %(request_id)s AND seq <= %(until)s AND kind = 'RequestStreamChunk'
ORDER BY seq DESC
LIMIT %(limit)s

-- name: pending_by_function
-- Calls queued for an executor (new, or a retry waiting for its backoff), by
-- function: /metrics's calls waiting (the runnable index holds just these rows);
-- not those parked on a wait (a sleep, a signal, their children).
SELECT function, count(*) FROM calls
WHERE status = 'pending' AND dispatched = 1
  AND NOT EXISTS (SELECT 1 FROM waits w
                  WHERE w.call_id = calls.id AND w.status = 'waiting')
GROUP BY function
