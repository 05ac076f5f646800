//! Columns of `model_usage`: one row per model call. The record's milliseconds are
//! stored as the schema's microseconds (`ended_at`, `latency_us`, `first_token_us`).

use mark1_actors::domain::model::UsageRecord;
use mark1_actors::ports::StoreError;
use uuid::Uuid;

pub(crate) const USAGE_COLUMNS: &str = "id, namespace, task_id, run_id, agent, provider, model, \
     prompt_tokens, completion_tokens, cost, latency_us, first_token_us, ended_at";

pub(crate) struct UsageRow {
    pub id: Uuid,
    pub namespace: String,
    pub task_id: Option<Uuid>,
    pub run_id: Option<Uuid>,
    pub agent: Option<String>,
    pub provider: String,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: f64,
    pub latency_us: i64,
    pub first_token_us: Option<i64>,
    pub ended_at: i64,
}

/// Milliseconds as microseconds, refused when out of the storable range.
fn ms_to_us(ms: i64, what: &str) -> Result<i64, StoreError> {
    ms.checked_mul(1000).ok_or_else(|| StoreError::Rejected(format!("{what} {ms} ms is out of range")))
}

fn unsigned_ms_to_us(ms: u64, what: &str) -> Result<i64, StoreError> {
    ms_to_us(i64::try_from(ms).unwrap_or(i64::MAX), what)
}

impl UsageRow {
    pub fn new(record: &UsageRecord) -> Result<Self, StoreError> {
        if !record.cost.is_finite() {
            return Err(StoreError::Rejected(format!("usage cost {} is not a number", record.cost)));
        }
        Ok(UsageRow {
            id: record.id,
            namespace: record.namespace.clone(),
            task_id: record.task.map(|t| t.0),
            run_id: record.run.map(|r| r.0),
            agent: record.agent.clone(),
            provider: record.provider.clone(),
            model: record.model.clone(),
            prompt_tokens: record.prompt_tokens.into(),
            completion_tokens: record.completion_tokens.into(),
            cost: record.cost,
            latency_us: unsigned_ms_to_us(record.latency_ms, "latency")?,
            first_token_us: record
                .first_token_ms
                .map(|ms| unsigned_ms_to_us(ms, "first token"))
                .transpose()?,
            ended_at: ms_to_us(record.at_ms, "usage time")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> UsageRecord {
        UsageRecord {
            id: Uuid::now_v7(),
            at_ms: 1_700_000_000_123,
            namespace: "default".into(),
            task: None,
            run: None,
            agent: Some("writer".into()),
            provider: "local".into(),
            model: "small".into(),
            prompt_tokens: u32::MAX,
            completion_tokens: 5,
            cost: 0.25,
            latency_ms: 1500,
            first_token_ms: Some(20),
        }
    }

    #[test]
    fn milliseconds_become_microseconds() {
        let row = UsageRow::new(&record()).unwrap();
        assert_eq!(
            (row.ended_at, row.latency_us, row.first_token_us),
            (1_700_000_000_123_000, 1_500_000, Some(20_000))
        );
        assert_eq!(row.prompt_tokens, i64::from(u32::MAX));
    }

    #[test]
    fn unstorable_values_are_rejected() {
        let mut far = record();
        far.at_ms = i64::MAX;
        assert!(matches!(UsageRow::new(&far), Err(StoreError::Rejected(_))));
        let mut slow = record();
        slow.latency_ms = u64::MAX;
        assert!(matches!(UsageRow::new(&slow), Err(StoreError::Rejected(_))));
        let mut nan = record();
        nan.cost = f64::NAN;
        assert!(matches!(UsageRow::new(&nan), Err(StoreError::Rejected(_))));
    }
}
