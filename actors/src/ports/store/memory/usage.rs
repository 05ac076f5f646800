//! The memory store's model usage: records by time, with the sums the port reads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::super::{UsageQuery, UsageRow, UsageTotal};
use crate::domain::model::UsageRecord;

/// Usage records ordered by when the call ended, so pruning and retention take the
/// oldest first; `ids` finds a record already stored without a scan.
#[derive(Default)]
pub(super) struct UsageTable {
    records: BTreeMap<(i128, Uuid), UsageRecord>,
    ids: HashSet<Uuid>,
}

/// Microseconds since the Unix epoch, as the SQL stores compare times (`usage_at`
/// turns a record's milliseconds into the same unit).
fn micros(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_micros() as i128,
        Err(before) => -(before.duration().as_micros() as i128),
    }
}

fn usage_at(record: &UsageRecord) -> i128 {
    i128::from(record.at_ms) * 1000
}

impl UsageTable {
    /// Stores `record` unless its id is already stored.
    pub fn insert(&mut self, record: &UsageRecord) {
        if self.ids.insert(record.id) {
            self.records.insert((usage_at(record), record.id), record.clone());
        }
    }

    /// Records held, and as many ids.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        assert_eq!(self.records.len(), self.ids.len());
        self.records.len()
    }

    /// Drops the oldest records past the `retain` newest.
    pub fn retain_newest(&mut self, retain: usize) {
        while self.records.len() > retain {
            if let Some(((_, id), _)) = self.records.pop_first() {
                self.ids.remove(&id);
            }
        }
    }

    /// Deletes at most `limit` records that ended before `before`, oldest first.
    pub fn prune(&mut self, before: SystemTime, limit: usize) -> usize {
        let before = micros(before);
        let mut deleted = 0;
        while deleted < limit {
            let Some(entry) = self.records.first_entry() else { break };
            if entry.key().0 >= before {
                break;
            }
            let ((_, id), _) = entry.remove_entry();
            self.ids.remove(&id);
            deleted += 1;
        }
        deleted
    }

    pub fn totals(&self, since: SystemTime) -> Vec<UsageTotal> {
        let mut totals: BTreeMap<&str, UsageTotal> = BTreeMap::new();
        for record in self.records.range((micros(since), Uuid::nil())..).map(|(_, r)| r) {
            let total = totals.entry(&record.namespace).or_insert_with(|| UsageTotal {
                namespace: record.namespace.clone(),
                tokens: 0,
                cost: 0.0,
            });
            total.tokens += u64::from(record.prompt_tokens) + u64::from(record.completion_tokens);
            total.cost += record.cost;
        }
        totals.into_values().collect()
    }

    pub fn report(&self, query: &UsageQuery) -> Vec<UsageRow> {
        let since = query.since.map_or(i128::MIN, micros);
        let until = query.until.map_or(i128::MAX, micros);
        let mut rows: HashMap<Option<String>, UsageRow> = HashMap::new();
        let matching = self.records.range((since, Uuid::nil())..).take_while(|((at, _), _)| *at < until);
        for (_, record) in matching {
            if query.namespace.as_ref().is_some_and(|ns| &record.namespace != ns) {
                continue;
            }
            let key = query.group_by.key(record);
            let row = rows.entry(key.clone()).or_insert_with(|| UsageRow {
                key,
                calls: 0,
                prompt_tokens: 0,
                completion_tokens: 0,
                cost: 0.0,
            });
            row.calls += 1;
            row.prompt_tokens += u64::from(record.prompt_tokens);
            row.completion_tokens += u64::from(record.completion_tokens);
            row.cost += record.cost;
        }
        let mut rows: Vec<UsageRow> = rows.into_values().collect();
        rows.sort_by(UsageRow::report_order);
        rows.truncate(UsageQuery::LIMIT);
        rows
    }
}
