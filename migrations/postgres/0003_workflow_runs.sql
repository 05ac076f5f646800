-- Mark-1 schema, version 3 (PostgreSQL). Kept column for column with migrations/sqlite.

-- What a run record holds that version 1 did not: whether its journal is committed before
-- the run acts, and the step of a parent run that a sub-workflow run serves (both set or
-- neither). No run was written before this version, so the default only fills the gap.
ALTER TABLE runs ADD COLUMN durable BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE runs ADD COLUMN parent_run UUID;
ALTER TABLE runs ADD COLUMN parent_step TEXT;

-- Claims: the unfinished runs of a node start, spelled as RunState names them (a run is
-- never queued).
DROP INDEX runs_unfinished_owner;
CREATE INDEX runs_unfinished_owner ON runs (owner, id) WHERE state IN ('running', 'waiting_approval');

-- Listing a namespace's runs newest first (GET /v1/runs), as tasks_namespace_id.
CREATE INDEX runs_namespace_id ON runs (namespace, id);
