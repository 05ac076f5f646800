//! Audit records and their hash chain (DESIGN §9): every administrative, security and
//! run-changing action leaves a record; each chain (one per node, `<node>`, plus
//! `<node>:cli` for the local command line) links every record to the one before it, so
//! an edited, deleted or reordered row is found by [`verify_chain`].
//!
//! `hash = SHA-256(encoding)`, where the encoding is the previous record's hash followed
//! by every field of the record, each one tagged and length-prefixed ([`AuditRecord::digest`]).
//! Concatenating bare fields would be ambiguous (`"ab" + "c"` and `"a" + "bc"`), and an
//! ambiguity is an edit that keeps the hash. What the chain cannot show by itself is the
//! loss of its newest records: a truncated chain is still a valid chain.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Starts every encoding, so a record's hash can never equal the hash of some other
/// kind of data, and a later change of the encoding gets a new tag.
const DOMAIN: &[u8] = b"mark1.audit.v1";

/// How an audited action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    /// Refused: not authenticated, or not allowed.
    Denied,
    /// Allowed, but it failed.
    Failure,
}

impl AuditOutcome {
    pub const ALL: [AuditOutcome; 3] = [AuditOutcome::Success, AuditOutcome::Denied, AuditOutcome::Failure];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failure => "failure",
        }
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown audit outcome '{s}'"))
    }
}

/// What a caller knows about an action; the audit actor adds the chain, the sequence
/// number, the time and the hashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who acted: the principal's subject (`key:<id>`, `jwt:<sub>`, `cli:<user>`).
    pub actor: String,
    /// What was done, dotted: `key.create`, `agent.register`, `run.patch`, `auth.denied`.
    pub action: String,
    pub namespace: Option<String>,
    /// What it was done to: `key:<id>`, `agent:<ns>/<name>`, `run:<id>`.
    pub subject: Option<String>,
    pub outcome: AuditOutcome,
    /// The HTTP request id, to find the request in the logs.
    pub request_id: Option<String>,
    /// Anything else worth keeping (the role of a new key, the reason of a refusal).
    pub data: Value,
}

impl AuditEntry {
    /// An entry with no namespace, subject, request id or data.
    pub fn new(actor: impl Into<String>, action: impl Into<String>, outcome: AuditOutcome) -> Self {
        AuditEntry {
            actor: actor.into(),
            action: action.into(),
            namespace: None,
            subject: None,
            outcome,
            request_id: None,
            data: Value::Null,
        }
    }
}

/// The newest record of a chain: where the next one links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: Digest,
}

/// One stored audit record (table `audit_log`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The chain: the node's name, or `<node>:cli` for the command line.
    pub node: String,
    /// 1 for a chain's first record, then one more for each.
    pub seq: u64,
    /// Hashed and stored to the microsecond.
    #[serde(with = "humantime_serde")]
    pub recorded_at: SystemTime,
    pub actor: String,
    pub action: String,
    pub namespace: Option<String>,
    pub subject: Option<String>,
    pub outcome: AuditOutcome,
    pub request_id: Option<String>,
    pub data: Value,
    /// The hash of record `seq - 1`; `None` for the first record.
    pub prev_hash: Option<Digest>,
    pub hash: Digest,
}

impl AuditRecord {
    /// The record after `head` (the first of the chain when `None`), hashed.
    pub fn chained(node: &str, head: Option<AuditHead>, recorded_at: SystemTime, entry: AuditEntry) -> Self {
        let mut record = AuditRecord {
            node: node.to_string(),
            seq: head.map_or(1, |h| h.seq + 1),
            recorded_at,
            actor: entry.actor,
            action: entry.action,
            namespace: entry.namespace,
            subject: entry.subject,
            outcome: entry.outcome,
            request_id: entry.request_id,
            data: entry.data,
            prev_hash: head.map(|h| h.hash),
            hash: [0; 32],
        };
        record.hash = record.digest();
        record
    }

    /// Where the record after this one links.
    pub fn head(&self) -> AuditHead {
        AuditHead { seq: self.seq, hash: self.hash }
    }

    /// SHA-256 of the previous hash and every field but `hash`, as `encode` lays them out.
    pub fn digest(&self) -> Digest {
        Sha256::digest(encode(self)).into()
    }
}

/// The hashed bytes: the domain tag, then `prev_hash`, then the fields in a fixed order.
/// Text is a u64 big-endian length then UTF-8; an optional value is a 0 byte (absent) or
/// a 1 byte then the value; numbers are 8 bytes big-endian; the time is microseconds
/// since the Unix epoch (as stored, so a record read back hashes the same); `data` is
/// canonical JSON (object keys sorted, no spaces) as text.
fn encode(r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    text(&mut out, std::str::from_utf8(DOMAIN).expect("ASCII tag"));
    match &r.prev_hash {
        None => out.push(0),
        Some(hash) => {
            out.push(1);
            out.extend_from_slice(hash);
        }
    }
    text(&mut out, &r.node);
    out.extend_from_slice(&r.seq.to_be_bytes());
    out.extend_from_slice(&micros(r.recorded_at).to_be_bytes());
    text(&mut out, &r.actor);
    text(&mut out, &r.action);
    optional(&mut out, r.namespace.as_deref());
    optional(&mut out, r.subject.as_deref());
    text(&mut out, r.outcome.as_str());
    optional(&mut out, r.request_id.as_deref());
    let mut json = String::new();
    canonical_json(&r.data, &mut json);
    text(&mut out, &json);
    out
}

fn text(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn optional(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            text(out, s);
        }
    }
}

/// Microseconds since the Unix epoch, rounded toward the epoch, as the stores keep times.
fn micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

/// JSON with object keys in sorted order and no whitespace: the same value always has
/// the same text, whatever order its keys were inserted or stored in (serde_json keeps
/// insertion order when some crate in the build enables `preserve_order`).
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// What is wrong at the first bad record of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakKind {
    /// The record's hash does not match its contents: a field was changed.
    Edited,
    /// Records are missing before this one: `expected` was the next sequence number.
    Missing { expected: u64 },
    /// The sequence goes backwards or repeats: records were reordered or duplicated.
    OutOfOrder { previous: u64 },
    /// `prev_hash` does not match the record before it: a record was removed and the rest
    /// renumbered, or one was put in between.
    Unlinked,
    /// The record belongs to another chain.
    WrongChain { found: String },
}

/// The first place where a chain does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit chain '{node}' breaks at seq {seq}: {}", describe(kind))]
pub struct ChainBreak {
    pub node: String,
    pub seq: u64,
    #[serde(flatten)]
    pub kind: BreakKind,
}

fn describe(kind: &BreakKind) -> String {
    match kind {
        BreakKind::Edited => "the record was edited (its hash does not match its contents)".into(),
        BreakKind::Missing { expected } => format!("records are missing from seq {expected}"),
        BreakKind::OutOfOrder { previous } => format!("it follows seq {previous} (reordered or duplicated)"),
        BreakKind::Unlinked => "its prev_hash is not the previous record's hash".into(),
        BreakKind::WrongChain { found } => format!("the record belongs to chain '{found}'"),
    }
}

/// A chain that holds, from seq 1 to `head`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedChain {
    pub node: String,
    pub records: u64,
    pub head: Option<AuditHead>,
}

/// Checks one chain's records, oldest first, a page at a time (a chain need not fit in
/// memory). After the first break, records are still counted but no longer checked.
#[derive(Debug)]
pub struct ChainVerifier {
    node: String,
    records: u64,
    last: Option<AuditHead>,
    broken: Option<ChainBreak>,
}

impl ChainVerifier {
    pub fn new(node: impl Into<String>) -> Self {
        ChainVerifier { node: node.into(), records: 0, last: None, broken: None }
    }

    pub fn push(&mut self, record: &AuditRecord) {
        self.records += 1;
        if self.broken.is_none() {
            if let Err(kind) = self.check(record) {
                self.broken = Some(ChainBreak { node: self.node.clone(), seq: record.seq, kind });
            }
        }
        self.last = Some(record.head());
    }

    /// Checked in this order, so each kind of tampering is named by its first symptom:
    /// the chain, the sequence, the record's own hash, then its link to the one before.
    fn check(&self, record: &AuditRecord) -> Result<(), BreakKind> {
        if record.node != self.node {
            return Err(BreakKind::WrongChain { found: record.node.clone() });
        }
        let expected = self.last.map_or(1, |h| h.seq + 1);
        if record.seq < expected {
            let previous = self.last.map_or(0, |h| h.seq);
            return Err(BreakKind::OutOfOrder { previous });
        }
        if record.seq > expected {
            return Err(BreakKind::Missing { expected });
        }
        if record.digest() != record.hash {
            return Err(BreakKind::Edited);
        }
        if record.prev_hash != self.last.map(|h| h.hash) {
            return Err(BreakKind::Unlinked);
        }
        Ok(())
    }

    /// The chain checked.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Records pushed so far, checked or not.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The last record pushed.
    pub fn last(&self) -> Option<AuditHead> {
        self.last
    }

    pub fn broken(&self) -> Option<&ChainBreak> {
        self.broken.as_ref()
    }

    pub fn finish(self) -> Result<VerifiedChain, ChainBreak> {
        match self.broken {
            Some(broken) => Err(broken),
            None => Ok(VerifiedChain { node: self.node, records: self.records, head: self.last }),
        }
    }
}

/// Checks a whole chain given oldest first; the chain is the first record's `node`.
pub fn verify_chain(records: &[AuditRecord]) -> Result<VerifiedChain, ChainBreak> {
    let node = records.first().map(|r| r.node.clone()).unwrap_or_default();
    let mut verifier = ChainVerifier::new(node);
    for record in records {
        verifier.push(record);
    }
    verifier.finish()
}

#[cfg(test)]
mod tests;
