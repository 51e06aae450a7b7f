-- The SQLite store's plumbing (store/_sqlite_file.py): its schema.
-- "-- name: x" starts a block.

-- name: tables
SELECT name FROM sqlite_master WHERE type = 'table'

-- name: schema_version
SELECT value FROM cairn_meta WHERE key = 'schema_version'

-- name: set_schema_version
INSERT OR REPLACE INTO cairn_meta (key, value) VALUES ('schema_version', :version)
