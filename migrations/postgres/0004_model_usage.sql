-- Mark-1 schema, version 4 (PostgreSQL). Kept column for column with migrations/sqlite.

-- One row per model call (issue 6): usage and cost per task, run, agent and namespace.
-- Written once: a batch retried after an unconfirmed commit carries the same id, and
-- `ON CONFLICT (id) DO NOTHING` keeps the first. The router restores its budgets from
-- these rows at start. Token counts are BIGINT: they are u32 in the record, past INTEGER.
CREATE TABLE model_usage (
    id UUID NOT NULL PRIMARY KEY,
    namespace TEXT NOT NULL,
    -- The task, run and agent the call was made for; NULL for a call outside them.
    task_id UUID,
    run_id UUID,
    agent TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost DOUBLE PRECISION NOT NULL,
    latency_us BIGINT NOT NULL,
    -- Streams only: time until the first piece of the answer.
    first_token_us BIGINT,
    -- When the call ended.
    ended_at BIGINT NOT NULL
);
-- Reports of one namespace over a time range.
CREATE INDEX model_usage_namespace_ended ON model_usage (namespace, ended_at);
-- Totals since a time (budgets), and pruning by age.
CREATE INDEX model_usage_ended ON model_usage (ended_at);
