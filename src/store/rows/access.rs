//! Columns of `api_keys` and `audit_log`. Digests are `BLOB` on SQLite and `bytea` on
//! PostgreSQL; roles and outcomes their snake_case names.

use mark1_actors::domain::{ApiKeyRecord, AuditHead, AuditRecord};
use mark1_actors::ports::StoreError;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{decode_error, get, get_time, json_text, micros, small, time};

pub(crate) const API_KEY_COLUMNS: &str =
    "id, sha256, name, role, namespace, created_by, created_at, expires_at, revoked_at";
pub(crate) const AUDIT_COLUMNS: &str =
    "node, seq, recorded_at, actor, action, namespace, subject, outcome, request_id, data, prev_hash, hash";

pub(crate) struct ApiKeyRow {
    pub id: String,
    pub sha256: Vec<u8>,
    pub name: String,
    pub role: &'static str,
    pub namespace: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKeyRow {
    pub fn new(key: &ApiKeyRecord) -> Result<Self, StoreError> {
        Ok(ApiKeyRow {
            id: key.id.clone(),
            sha256: key.sha256.to_vec(),
            name: key.name.clone(),
            role: key.role.as_str(),
            namespace: key.namespace.clone(),
            created_by: key.created_by.clone(),
            created_at: micros(key.created_at)?,
            expires_at: key.expires_at.map(micros).transpose()?,
            revoked_at: key.revoked_at.map(micros).transpose()?,
        })
    }
}

pub(crate) struct AuditRow {
    pub node: String,
    pub seq: i64,
    pub recorded_at: i64,
    pub actor: String,
    pub action: String,
    pub namespace: Option<String>,
    pub subject: Option<String>,
    pub outcome: &'static str,
    pub request_id: Option<String>,
    pub data: String,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Vec<u8>,
}

impl AuditRow {
    pub fn new(record: &AuditRecord) -> Result<Self, StoreError> {
        Ok(AuditRow {
            node: record.node.clone(),
            seq: small(record.seq, "audit seq")?,
            recorded_at: micros(record.recorded_at)?,
            actor: record.actor.clone(),
            action: record.action.clone(),
            namespace: record.namespace.clone(),
            subject: record.subject.clone(),
            outcome: record.outcome.as_str(),
            request_id: record.request_id.clone(),
            data: json_text(&record.data)?,
            prev_hash: record.prev_hash.map(|h| h.to_vec()),
            hash: record.hash.to_vec(),
        })
    }
}

fn digest(bytes: Vec<u8>, column: &str) -> Result<[u8; 32], sqlx::Error> {
    bytes.try_into().map_err(|b: Vec<u8>| decode_error(column, format!("{} bytes, not 32", b.len())))
}

fn parsed<T: std::str::FromStr>(text: String, column: &str) -> Result<T, sqlx::Error>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| decode_error(column, e))
}

pub(crate) fn api_key_from_row<R>(row: &R) -> Result<ApiKeyRecord, sqlx::Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(ApiKeyRecord {
        id: get(row, "id")?,
        sha256: digest(get(row, "sha256")?, "sha256")?,
        name: get(row, "name")?,
        role: parsed(get(row, "role")?, "role")?,
        namespace: get(row, "namespace")?,
        created_by: get(row, "created_by")?,
        created_at: get_time(row, "created_at")?,
        expires_at: get::<R, Option<i64>>(row, "expires_at")?.map(time),
        revoked_at: get::<R, Option<i64>>(row, "revoked_at")?.map(time),
    })
}

pub(crate) fn audit_from_row<R>(row: &R) -> Result<AuditRecord, sqlx::Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Json<Value>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let seq: i64 = get(row, "seq")?;
    Ok(AuditRecord {
        node: get(row, "node")?,
        seq: u64::try_from(seq).map_err(|e| decode_error("seq", e))?,
        recorded_at: get_time(row, "recorded_at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        namespace: get(row, "namespace")?,
        subject: get(row, "subject")?,
        outcome: parsed(get(row, "outcome")?, "outcome")?,
        request_id: get(row, "request_id")?,
        data: get::<R, Json<Value>>(row, "data")?.0,
        prev_hash: get::<R, Option<Vec<u8>>>(row, "prev_hash")?
            .map(|h| digest(h, "prev_hash"))
            .transpose()?,
        hash: digest(get(row, "hash")?, "hash")?,
    })
}

/// `seq` and `hash` of a chain's newest row.
pub(crate) fn audit_head_from_row<R>(row: &R) -> Result<AuditHead, sqlx::Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let seq: i64 = get(row, "seq")?;
    Ok(AuditHead {
        seq: u64::try_from(seq).map_err(|e| decode_error("seq", e))?,
        hash: digest(get(row, "hash")?, "hash")?,
    })
}
