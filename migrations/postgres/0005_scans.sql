-- Mark-1 schema, version 5 (PostgreSQL). Kept column for column with migrations/sqlite.

-- One row per scan job (`POST /v1/scans`): its state, the counts of its report, and the
-- report itself (the RepositoryAnalysis JSON, written once with the final state).
-- The report is `jsonb`, unlike the hot-path JSON columns (migrations/README.md): it is
-- written once per scan, and is the document worth querying inside (models, providers).
CREATE TABLE scans (
    id UUID NOT NULL PRIMARY KEY,
    namespace TEXT NOT NULL,
    -- The scanned folder, absolute and canonical.
    path TEXT NOT NULL,
    -- running, succeeded or failed.
    state TEXT NOT NULL,
    submitter TEXT,
    error TEXT,
    -- The report's counts; NULL until the scan succeeded.
    files BIGINT,
    llm_calls BIGINT,
    agents BIGINT,
    tools BIGINT,
    mcp BIGINT,
    problems BIGINT,
    result JSONB,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
-- A namespace's scans, newest first (listings page by id).
CREATE INDEX scans_namespace_id ON scans (namespace, id);
