-- Mark-1 schema, version 4 (SQLite). Kept column for column with migrations/postgres.

-- One row per model call (issue 6): usage and cost per task, run, agent and namespace.
-- Written once: a batch retried after an unconfirmed commit carries the same id, and
-- `ON CONFLICT (id) DO NOTHING` keeps the first. The router restores its budgets from
-- these rows at start.
CREATE TABLE model_usage (
    id BLOB NOT NULL PRIMARY KEY,
    namespace TEXT NOT NULL,
    -- The task, run and agent the call was made for; NULL for a call outside them.
    task_id BLOB,
    run_id BLOB,
    agent TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    latency_us INTEGER NOT NULL,
    -- Streams only: time until the first piece of the answer.
    first_token_us INTEGER,
    -- When the call ended.
    ended_at INTEGER NOT NULL
);
-- Reports of one namespace over a time range.
CREATE INDEX model_usage_namespace_ended ON model_usage (namespace, ended_at);
-- Totals since a time (budgets), and pruning by age.
CREATE INDEX model_usage_ended ON model_usage (ended_at);
