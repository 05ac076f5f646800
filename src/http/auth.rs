//! Authentication at the edge: every `/v1` request names a credential — an API key
//! (`Authorization: Bearer mk1_…` or `X-API-Key`) or a JWT (`Authorization: Bearer …`) —
//! and becomes a [`Principal`]; handlers then ask it for the permission they need before
//! they read the body.

pub mod jwt;
mod key_cache;

use std::sync::Arc;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use mark1_actors::domain::{Permission, Principal};
use mark1_actors::ports::Store;

use super::error::ApiError;
use super::state::EdgeState;
use crate::auth::keys::{self, KeyRejected};
use jwt::JwtVerifier;
use key_cache::KeyCache;

/// Turns credentials into principals.
pub struct Authenticator {
    store: Arc<dyn Store>,
    jwt: JwtVerifier,
    keys: KeyCache,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, jwt: JwtVerifier) -> Self {
        Authenticator { store, jwt, keys: KeyCache::default() }
    }

    /// Drops a revoked key's cached record, so the revocation holds from the next request.
    pub fn forget_key(&self, id: &str) {
        self.keys.forget(id);
    }

    /// An API key: its record from the cache or the store, then verified as
    /// [`keys::authenticate`] does.
    async fn api_key(&self, credential: &str) -> Result<Principal, ApiError> {
        let rejected = |e: KeyRejected| ApiError::Unauthorized(e.to_string());
        let id = keys::parse(credential).map_err(|e| rejected(e.into()))?.id;
        let record = match self.keys.get(id) {
            Some(record) => record,
            None => {
                let record = self.store.api_key(id).await?;
                let record = Arc::new(record.ok_or_else(|| rejected(KeyRejected::Unknown))?);
                self.keys.put(record.clone());
                record
            }
        };
        keys::verify(&record, credential, std::time::SystemTime::now()).map_err(rejected)
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        self.verify(credential(headers)?).await
    }

    /// Checks one credential: an API key (by its prefix) or a JWT.
    async fn verify(&self, credential: &str) -> Result<Principal, ApiError> {
        if credential.strip_prefix(keys::PREFIX).is_some_and(|rest| rest.starts_with('_')) {
            self.api_key(credential).await
        } else {
            self.jwt.verify(credential).await.map_err(|e| ApiError::Unauthorized(e.to_string()))
        }
    }
}

/// The credential of a request: `X-API-Key`, else a bearer token.
fn credential(headers: &HeaderMap) -> Result<&str, ApiError> {
    let text = |name| {
        headers
            .get(name)
            .map(|v| v.to_str().map_err(|_| ApiError::Unauthorized(format!("{name} is not ASCII"))))
    };
    if let Some(key) = text("x-api-key") {
        return key.map(str::trim);
    }
    match text("authorization") {
        None => {
            Err(ApiError::Unauthorized("no credential: send `Authorization: Bearer …` or `X-API-Key`".into()))
        }
        Some(value) => {
            let value = value?;
            let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(ApiError::Unauthorized(
                    "the Authorization header must be `Bearer <token>`".into(),
                ));
            }
            Ok(token.trim())
        }
    }
}

/// `?access_token=` of a WebSocket upgrade that carries no credential header: browsers
/// cannot set headers on a WebSocket. Other requests must use a header, so the token
/// does not end up in URLs (and logs) where a header would do.
fn upgrade_token(parts: &Parts) -> Option<String> {
    if !super::wants_websocket(&parts.headers)
        || parts.headers.contains_key("x-api-key")
        || parts.headers.contains_key(header::AUTHORIZATION)
    {
        return None;
    }
    let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri).ok()?;
    query.0.get("access_token").cloned()
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    /// The request's `x-request-id`, for audit records.
    pub request_id: Option<String>,
}

/// Filled with the caller's subject once authenticated, so a middleware that sees only
/// the response (the audit of denials) knows who was refused.
#[derive(Clone, Debug, Default)]
pub struct CallerSlot(pub Arc<std::sync::OnceLock<String>>);

impl Caller {
    /// Checks one permission of the role table; `what` completes "your role may not …".
    pub fn require(&self, permission: Permission, what: &str) -> Result<(), ApiError> {
        if self.principal.may(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }

    /// The namespace the request acts in: the one named, which the caller must reach, or
    /// the caller's own (admins without one default to `default`).
    pub fn namespace(&self, named: Option<&str>) -> Result<String, ApiError> {
        match (named, &self.principal.namespace) {
            (Some(named), _) if self.principal.reaches(named) => Ok(named.to_string()),
            (Some(named), _) => Err(ApiError::Forbidden(format!("namespace '{named}' is not yours"))),
            (None, Some(own)) => Ok(own.clone()),
            (None, None) => Ok(mark1_actors::DEFAULT_NAMESPACE.to_string()),
        }
    }

    /// The namespace filter of a listing: the one named (which the caller must reach), the
    /// caller's own, or none (every namespace) for an admin who names none.
    pub fn listing_namespace(&self, named: Option<&str>) -> Result<Option<String>, ApiError> {
        match &self.principal.namespace {
            None => Ok(named.map(str::to_string)),
            Some(_) => self.namespace(named).map(Some),
        }
    }

    /// Whether the caller may see something of `namespace` (namespaces isolate teams).
    pub fn reaches(&self, namespace: &str) -> bool {
        self.principal.reaches(namespace)
    }
}

impl FromRequestParts<Arc<EdgeState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<EdgeState>) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let principal = match upgrade_token(parts) {
            Some(token) => state.auth.verify(&token).await?,
            None => state.auth.authenticate(&parts.headers).await?,
        };
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            let _ = slot.0.set(principal.subject.clone());
        }
        state.limiter.check(&principal)?;
        let request_id = super::request_id(&parts.headers).map(str::to_string);
        let caller = Caller { principal, request_id };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}
