-- Mark-1 schema, version 1 (SQLite). Kept column for column with migrations/postgres.
-- Times: INTEGER microseconds since the Unix epoch (*_at); durations: microseconds (*_us).
-- Ids: UUIDs as 16-byte BLOBs (v7 ids sort by time). JSON: TEXT.

-- Agent definitions registered at run time; the spec is the AgentSpec as JSON.
CREATE TABLE agents (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE tasks (
    id BLOB NOT NULL PRIMARY KEY,
    namespace TEXT NOT NULL,
    -- {"agent": "name"} or {"capabilities": ["…"]}
    target TEXT NOT NULL,
    agent TEXT,
    -- queued | running | succeeded | failed | cancelled | timed_out
    state TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    priority INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    idempotency_key TEXT,
    durable BOOLEAN NOT NULL,
    submitter TEXT,
    timeout_us INTEGER,
    traceparent TEXT,
    -- The node start (nodes.id) running the task while it is unfinished.
    owner BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deadline_at INTEGER
);
-- One task per idempotency key and namespace.
CREATE UNIQUE INDEX tasks_idempotency ON tasks (namespace, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Claims: the unfinished tasks of a node start.
CREATE INDEX tasks_unfinished_owner ON tasks (owner, id) WHERE state IN ('queued', 'running');
-- Counting by state, and pruning finished tasks by age.
CREATE INDEX tasks_state_updated ON tasks (state, updated_at);

CREATE TABLE task_attempts (
    task_id BLOB NOT NULL,
    attempt INTEGER NOT NULL,
    node_start BLOB NOT NULL,
    agent TEXT,
    state TEXT NOT NULL,
    error TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (task_id, attempt)
) WITHOUT ROWID;

-- Stored events (DESIGN §13.4); seq is the node's event sequence.
CREATE TABLE events (
    seq INTEGER NOT NULL PRIMARY KEY,
    emitted_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    subject TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_emitted ON events (emitted_at);

-- Workflow definitions, every version kept.
CREATE TABLE workflows (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name, version)
);

CREATE TABLE runs (
    id BLOB NOT NULL PRIMARY KEY,
    namespace TEXT NOT NULL,
    workflow TEXT NOT NULL,
    workflow_version INTEGER NOT NULL,
    state TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    idempotency_key TEXT,
    submitter TEXT,
    -- The node start driving the run while it is unfinished.
    owner BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deadline_at INTEGER
);
CREATE UNIQUE INDEX runs_idempotency ON runs (namespace, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_unfinished_owner ON runs (owner, id)
    WHERE state IN ('queued', 'running', 'waiting_approval');
CREATE INDEX runs_state_updated ON runs (state, updated_at);

-- What a run did, step by step, in order: replayed to resume a run after a crash.
CREATE TABLE run_journal (
    run_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    step TEXT,
    attempt INTEGER,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- API keys: looked up by their public prefix id, checked against the SHA-256 of the secret.
CREATE TABLE api_keys (
    id TEXT NOT NULL PRIMARY KEY,
    sha256 BLOB NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    -- NULL: every namespace (admins).
    namespace TEXT,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);

CREATE TABLE users (
    id BLOB NOT NULL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    namespace TEXT,
    created_at INTEGER NOT NULL,
    disabled_at INTEGER
);

-- Audit records, one hash chain per node: hash = SHA-256(prev_hash || record).
CREATE TABLE audit_log (
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    namespace TEXT,
    subject TEXT,
    outcome TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash BLOB,
    hash BLOB NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE INDEX audit_log_recorded ON audit_log (recorded_at);

-- One row per node start and its lease (DESIGN §4).
CREATE TABLE nodes (
    id BLOB NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    lease_expires_at INTEGER NOT NULL
);
CREATE INDEX nodes_name ON nodes (name);
CREATE INDEX nodes_lease ON nodes (lease_expires_at);

-- Named leases for cluster singletons; epoch fences a former holder's writes.
CREATE TABLE leases (
    name TEXT NOT NULL PRIMARY KEY,
    holder BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
