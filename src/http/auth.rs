//! Authentication at the edge: every `/v1` request names a credential — an API key
//! (`Authorization: Bearer mk1_…` or `X-API-Key`) or a JWT (`Authorization: Bearer …`) —
//! and becomes a [`Principal`]; handlers then ask it for the permission they need before
//! they read the body.

pub mod jwt;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use mark1_actors::domain::{Permission, Principal};
use mark1_actors::ports::Store;

use super::error::ApiError;
use super::state::EdgeState;
use crate::auth::keys::{self, AuthError};
use jwt::JwtVerifier;

/// Turns credentials into principals.
pub struct Authenticator {
    store: Arc<dyn Store>,
    jwt: JwtVerifier,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, jwt: JwtVerifier) -> Self {
        Authenticator { store, jwt }
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let credential = credential(headers)?;
        if credential.strip_prefix(keys::PREFIX).is_some_and(|rest| rest.starts_with('_')) {
            keys::authenticate(self.store.as_ref(), credential, std::time::SystemTime::now()).await.map_err(
                |e| match e {
                    AuthError::Rejected(e) => ApiError::Unauthorized(e.to_string()),
                    AuthError::Store(e) => e.into(),
                },
            )
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
        let principal = state.auth.authenticate(&parts.headers).await?;
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            let _ = slot.0.set(principal.subject.clone());
        }
        state.limiter.check(&principal)?;
        let request_id = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let caller = Caller { principal, request_id };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}
