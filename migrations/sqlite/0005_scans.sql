-- Mark-1 schema, version 5 (SQLite). Kept column for column with migrations/postgres.

-- One row per scan job (`POST /v1/scans`): its state, the counts of its report, and the
-- report itself (the RepositoryAnalysis JSON, written once with the final state).
CREATE TABLE scans (
    id BLOB NOT NULL PRIMARY KEY,
    namespace TEXT NOT NULL,
    -- The scanned folder, absolute and canonical.
    path TEXT NOT NULL,
    -- running, succeeded or failed.
    state TEXT NOT NULL,
    submitter TEXT,
    error TEXT,
    -- The report's counts; NULL until the scan succeeded.
    files INTEGER,
    llm_calls INTEGER,
    agents INTEGER,
    tools INTEGER,
    mcp INTEGER,
    problems INTEGER,
    result TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
-- A namespace's scans, newest first (listings page by id).
CREATE INDEX scans_namespace_id ON scans (namespace, id);
