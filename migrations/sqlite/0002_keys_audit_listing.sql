-- Mark-1 schema, version 2 (SQLite). Kept column for column with migrations/postgres.

-- The request an audit record came from, to find it in the logs; part of the record's hash.
ALTER TABLE audit_log ADD COLUMN request_id TEXT;

-- Listing a namespace's tasks newest first (GET /v1/tasks): ids are time-ordered, so new
-- entries land at the end of the index.
CREATE INDEX tasks_namespace_id ON tasks (namespace, id);
