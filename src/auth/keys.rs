//! API keys (DESIGN §9): high-entropy, shown once, stored only as their SHA-256, found by
//! a public id.
//!
//! A key reads `mk1_<id>_<secret>`: `<id>` is 12 lowercase hex digits (48 random bits),
//! the row's primary key, safe to log and show; `<secret>` is 32 random bytes (256 bits)
//! in URL-safe base64 without padding (43 characters). The store keeps SHA-256 of the
//! whole text. With 256 bits of entropy a fast hash is as good as a slow one (nobody can
//! guess the input), so checking a key costs one primary-key read and one SHA-256 — no
//! password hash on the request path. Digests are compared in constant time.

use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mark1_actors::domain::{valid_name, ApiKeyRecord, AuditEntry, AuditOutcome, KeyState, Principal, Role};
use mark1_actors::ports::{Store, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The text every key starts with, so a leaked key is recognisable (secret scanners).
pub const PREFIX: &str = "mk1";
const ID_BYTES: usize = 6;
const ID_CHARS: usize = ID_BYTES * 2;
const SECRET_BYTES: usize = 32;
/// 32 bytes in base64 without padding.
const SECRET_CHARS: usize = 43;

/// What a new key is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub role: Role,
    /// Required but for admins; `None` lets an admin key reach every namespace.
    pub namespace: Option<String>,
    pub name: String,
    /// The subject of its creator (`key:<id>`, `cli:<user>`).
    pub created_by: Option<String>,
    pub expires_at: Option<SystemTime>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeySpecError {
    #[error("a {role} key needs a namespace; only admin keys may span every namespace")]
    NamespaceRequired { role: Role },
    #[error("invalid namespace '{0}': expected [a-z][a-z0-9_-]*")]
    InvalidNamespace(String),
    #[error("the key would expire before it is created")]
    AlreadyExpired,
}

/// Makes a key: its text, to show once, and the record to store.
pub fn generate(spec: KeySpec, now: SystemTime) -> Result<(String, ApiKeyRecord), KeySpecError> {
    match &spec.namespace {
        None if spec.role != Role::Admin => return Err(KeySpecError::NamespaceRequired { role: spec.role }),
        Some(ns) if !valid_name(ns) => return Err(KeySpecError::InvalidNamespace(ns.clone())),
        _ => {}
    }
    if spec.expires_at.is_some_and(|at| at <= now) {
        return Err(KeySpecError::AlreadyExpired);
    }
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    // The thread RNG is a CSPRNG (ChaCha) seeded from the operating system.
    let mut rng = rand::rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let plaintext = format!("{PREFIX}_{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let record = ApiKeyRecord {
        id,
        sha256: digest(&plaintext),
        name: spec.name,
        role: spec.role,
        namespace: spec.namespace,
        created_by: spec.created_by,
        created_at: now,
        expires_at: spec.expires_at,
        revoked_at: None,
    };
    Ok((plaintext, record))
}

fn digest(plaintext: &str) -> [u8; 32] {
    Sha256::digest(plaintext.as_bytes()).into()
}

/// Why a text is not a key at all (before any lookup).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MalformedKey {
    #[error("it does not start with '{PREFIX}_'")]
    Prefix,
    #[error("its id is not {ID_CHARS} lowercase hex digits")]
    Id,
    #[error("its secret is not {SECRET_CHARS} characters of URL-safe base64")]
    Secret,
}

/// The parts of a well-formed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub id: &'a str,
}

/// Checks the shape of a key and finds its id; the secret is checked by [`verify`].
pub fn parse(plaintext: &str) -> Result<ParsedKey<'_>, MalformedKey> {
    let rest =
        plaintext.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('_')).ok_or(MalformedKey::Prefix)?;
    // The secret's alphabet has '_', the id's has not: the first '_' ends the id.
    let (id, secret) = rest.split_once('_').ok_or(MalformedKey::Id)?;
    if id.len() != ID_CHARS || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(MalformedKey::Id);
    }
    let decoded = (secret.len() == SECRET_CHARS).then(|| URL_SAFE_NO_PAD.decode(secret).ok()).flatten();
    if decoded.is_none_or(|bytes| bytes.len() != SECRET_BYTES) {
        return Err(MalformedKey::Secret);
    }
    Ok(ParsedKey { id })
}

/// Why a key does not authenticate. The edge answers 401 to all of them alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejected {
    #[error("malformed API key: {0}")]
    Malformed(#[from] MalformedKey),
    #[error("unknown API key")]
    Unknown,
    #[error("the API key does not match")]
    Mismatch,
    #[error("the API key was revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
}

/// Checks `plaintext` against the stored `record` of its id at `now`. The secret is
/// checked first, so only the holder of a key learns that it was revoked or expired.
pub fn verify(record: &ApiKeyRecord, plaintext: &str, now: SystemTime) -> Result<Principal, KeyRejected> {
    let parsed = parse(plaintext)?;
    let same = digest(plaintext).ct_eq(&record.sha256);
    if parsed.id != record.id || !bool::from(same) {
        return Err(KeyRejected::Mismatch);
    }
    match record.state(now) {
        KeyState::Active => Ok(record.principal()),
        KeyState::Revoked => Err(KeyRejected::Revoked),
        KeyState::Expired => Err(KeyRejected::Expired),
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Rejected(#[from] KeyRejected),
    /// The key could not be looked up: the caller should answer "unavailable".
    #[error("cannot look up the API key: {0}")]
    Store(#[from] StoreError),
}

/// Parses the key, looks up its id in the store and verifies it: what the edge does for
/// every request that presents a key.
pub async fn authenticate(
    store: &dyn Store,
    plaintext: &str,
    now: SystemTime,
) -> Result<Principal, AuthError> {
    let id = parse(plaintext).map_err(KeyRejected::from)?.id;
    let record = store.api_key(id).await?.ok_or(KeyRejected::Unknown)?;
    Ok(verify(&record, plaintext, now)?)
}

/// The audit record of a key's creation: the same whether the edge or the command line
/// made the key, so one search of the log finds every record of a key.
pub fn created_entry(actor: String, record: &ApiKeyRecord) -> AuditEntry {
    let mut entry = AuditEntry::new(actor, "key.create", AuditOutcome::Success);
    entry.namespace = record.namespace.clone();
    entry.subject = Some(format!("key:{}", record.id));
    let expires_at = record.expires_at.map(|t| humantime::format_rfc3339_seconds(t).to_string());
    entry.data = serde_json::json!({"role": record.role, "name": record.name, "expires_at": expires_at});
    entry
}

/// The audit record of a key's revocation (`record` as it was before).
pub fn revoked_entry(actor: String, record: &ApiKeyRecord) -> AuditEntry {
    let mut entry = AuditEntry::new(actor, "key.revoke", AuditOutcome::Success);
    entry.namespace = record.namespace.clone();
    entry.subject = Some(format!("key:{}", record.id));
    entry.data = serde_json::json!({"already_revoked": record.revoked_at.is_some()});
    entry
}

#[cfg(test)]
mod tests;
