-- The PostgreSQL store's plumbing (store/_pg.py): its schema, and the commit
-- marks that settle a commit whose answer was lost. "-- name: x" starts a block.

-- name: tables
SELECT c.relname FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')

-- name: schema_version
SELECT value FROM cairn_meta WHERE key = 'schema_version'

-- name: migration_lock
SELECT pg_advisory_xact_lock(%(lock)s)

-- name: set_schema_version
INSERT INTO cairn_meta (key, value) VALUES ('schema_version', %(version)s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: identity
-- Which database and which calls table these are (their oids).
SELECT d.oid::bigint, COALESCE(to_regclass('calls')::oid::bigint, 0)
FROM pg_database d
WHERE d.datname = current_database()

-- name: end_transaction
-- Last statement of every write. When the transaction wrote, it stamps its
-- connection's commit mark (committed with it, or not at all: how a commit whose
-- answer was lost is settled) and sends listeners a wake-up, which PostgreSQL
-- delivers if and only if it commits. Returns the mark, NULL when it wrote nothing.
WITH stamped AS (
    INSERT INTO commit_marks (slot, mark, used_at)
    SELECT %(slot)s, %(mark)s, now()
    WHERE pg_current_xact_id_if_assigned() IS NOT NULL
    ON CONFLICT (slot) DO UPDATE SET mark = excluded.mark, used_at = excluded.used_at
    RETURNING mark
)
SELECT (SELECT mark FROM stamped),
       CASE WHEN %(notify)s AND EXISTS (SELECT FROM stamped)
            THEN pg_notify(%(channel)s, %(origin)s) END

-- name: with_commit_mark
-- The commit mark of a write of one statement sent alone (its own transaction, no
-- BEGIN or COMMIT: one message, one answer), put first in that statement's WITH
-- list. A data-modifying CTE always runs, so the mark commits exactly when the
-- statement does; the wake-up is sent from inside it, as end_transaction's.
WITH commit_mark AS (
    INSERT INTO commit_marks (slot, mark, used_at)
    VALUES (%(slot)s, %(mark)s,
            CASE WHEN %(notify)s
                 THEN (SELECT now() FROM pg_notify(%(channel)s, %(origin)s))
                 ELSE now() END)
    ON CONFLICT (slot) DO UPDATE SET mark = excluded.mark, used_at = excluded.used_at
)

-- name: settle_commit
-- The mark a connection's last commit left. Waits, on the row lock, for a
-- transaction of that connection still committing. Marks a slot never stamped.
INSERT INTO commit_marks (slot, mark, used_at) VALUES (%(slot)s, -1, now())
ON CONFLICT (slot) DO UPDATE SET used_at = commit_marks.used_at
RETURNING mark

-- name: prune_commit_marks
-- Marks of connections unused for a day: their commits were settled long ago.
DELETE FROM commit_marks WHERE used_at < now() - interval '1 day'
