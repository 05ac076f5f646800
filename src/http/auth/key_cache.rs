//! Verified API keys held for a few seconds, so a busy client costs one store read per
//! key and TTL instead of one per request.
//!
//! The cache holds the key's *record*, not the outcome: every request still hashes the
//! presented key and compares it with the record in constant time, and checks expiry and
//! revocation. A revocation through this edge drops the entry at once; one made elsewhere
//! (the `mark1 keys revoke` command, another node) takes effect within [`TTL`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mark1_actors::domain::ApiKeyRecord;
use parking_lot::RwLock;

/// How long a record read from the store is trusted.
pub const TTL: Duration = Duration::from_secs(5);
/// Beyond this many keys the cache starts over, so a flood of distinct keys cannot grow it.
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    records: RwLock<HashMap<String, (Arc<ApiKeyRecord>, Instant)>>,
}

impl KeyCache {
    /// The record of key `id`, if read from the store less than [`TTL`] ago.
    pub fn get(&self, id: &str) -> Option<Arc<ApiKeyRecord>> {
        let records = self.records.read();
        let (record, read_at) = records.get(id)?;
        (read_at.elapsed() < TTL).then(|| record.clone())
    }

    pub fn put(&self, record: Arc<ApiKeyRecord>) {
        let mut records = self.records.write();
        if records.len() >= MAX_KEYS {
            records.clear();
        }
        records.insert(record.id.clone(), (record, Instant::now()));
    }

    pub fn forget(&self, id: &str) {
        self.records.write().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use mark1_actors::domain::Role;

    use super::*;

    #[test]
    fn records_are_kept_for_the_ttl_and_forgotten_on_revocation() {
        let spec = crate::auth::keys::KeySpec {
            role: Role::Viewer,
            namespace: Some("a".into()),
            name: "t".into(),
            created_by: None,
            expires_at: None,
        };
        let (_, record) = crate::auth::keys::generate(spec, SystemTime::now()).unwrap();
        let id = record.id.clone();
        let cache = KeyCache::default();
        assert!(cache.get(&id).is_none());
        cache.put(Arc::new(record.clone()));
        assert_eq!(cache.get(&id).as_deref(), Some(&record));
        cache.forget(&id);
        assert!(cache.get(&id).is_none(), "a revocation through this edge takes effect at once");
        cache.records.write().insert(id.clone(), (Arc::new(record), Instant::now() - TTL));
        assert!(cache.get(&id).is_none(), "an entry older than the TTL is read again");
    }
}
