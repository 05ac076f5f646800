//! JSON Web Tokens: HS256 with a shared secret, RS256/EdDSA with configured public keys,
//! or an external issuer's JWKS. `iss`, `aud`, `exp` and `nbf` are checked with a bounded
//! leeway; each key accepts only its own algorithm, so a token cannot pick a weaker one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mark1_actors::domain::{Principal, Role};
use parking_lot::RwLock;
use serde_json::Value;

use crate::config::{read_secret, ConfigError, JwtConfig, PublicKeyAlgorithm};

/// Why a token was refused; the text goes to the client (it names no secret).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenRejected {
    #[error("tokens are not accepted by this node (no JWT key is configured)")]
    Disabled,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("no key matches the token's kid/alg")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token claims: {0}")]
    Claims(String),
}

/// A verification key and the one algorithm it accepts.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

pub struct JwtVerifier {
    config: JwtConfig,
    fixed: Vec<Key>,
    jwks: RwLock<Jwks>,
    http: reqwest::Client,
    /// One per accepted algorithm, built once rather than per token.
    validations: [(Algorithm, Validation); 3],
}

#[derive(Default)]
struct Jwks {
    keys: Vec<Key>,
    fetched: Option<Instant>,
}

/// A token with an unknown `kid` triggers a JWKS refetch at most this often, so garbage
/// tokens cannot make the node hammer the issuer.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error(transparent)]
    Secret(#[from] ConfigError),
    #[error("auth.jwt.public_keys: {path}: {message}")]
    PublicKey { path: String, message: String },
}

impl JwtVerifier {
    /// Reads the configured secret and key files; the JWKS is fetched on first use.
    pub fn new(config: &JwtConfig) -> Result<Self, JwtSetupError> {
        let mut fixed = Vec::new();
        let secret = read_secret(config.hs256_secret_env.as_deref(), config.hs256_secret_file.as_deref())?;
        if let Some(secret) = secret {
            fixed.push(Key {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        for public in &config.public_keys {
            let path = public.file.display().to_string();
            let pem = std::fs::read(&public.file)
                .map_err(|e| JwtSetupError::PublicKey { path: path.clone(), message: e.to_string() })?;
            let (algorithm, key) = match public.algorithm {
                PublicKeyAlgorithm::RS256 => (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem)),
                PublicKeyAlgorithm::EdDSA => (Algorithm::EdDSA, DecodingKey::from_ed_pem(&pem)),
            };
            let key = key.map_err(|e| JwtSetupError::PublicKey { path, message: e.to_string() })?;
            fixed.push(Key { kid: public.kid.clone(), algorithm, key });
        }
        let validations =
            [Algorithm::HS256, Algorithm::RS256, Algorithm::EdDSA].map(|a| (a, validation(config, a)));
        Ok(JwtVerifier {
            config: config.clone(),
            validations,
            fixed,
            jwks: RwLock::default(),
            http: reqwest::Client::new(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled()
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, TokenRejected> {
        if !self.enabled() {
            return Err(TokenRejected::Disabled);
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenRejected::Malformed(e.to_string()))?;
        let claims = match self.decode_with(&self.fixed, &header, token) {
            Some(result) => result?,
            None => self.decode_with_jwks(&header, token).await?,
        };
        self.principal(claims)
    }

    /// Tries the keys of `keys` with the token's algorithm until one verifies it: those
    /// with the token's `kid` first, then those without a `kid`. `None` when none fits,
    /// or when a token naming a `kid` found only keys without one and none of them
    /// verified it (its key may be elsewhere: the JWKS); else the claims, or the error of
    /// the last key tried.
    fn decode_with(
        &self,
        keys: &[Key],
        header: &jsonwebtoken::Header,
        token: &str,
    ) -> Option<Result<HashMap<String, Value>, TokenRejected>> {
        let validation = self.validations.iter().find(|(a, _)| *a == header.alg).map(|(_, v)| v)?;
        let named = |k: &&Key| header.kid.is_some() && k.kid == header.kid;
        let exact: Vec<&Key> = keys.iter().filter(|k| k.algorithm == header.alg).filter(named).collect();
        let unnamed = keys.iter().filter(|k| k.algorithm == header.alg && k.kid.is_none());
        let mut outcome = None;
        for key in exact.iter().copied().chain(unnamed) {
            let result = jsonwebtoken::decode::<HashMap<String, Value>>(token, &key.key, validation)
                .map(|data| data.claims)
                .map_err(|e| TokenRejected::Invalid(e.to_string()));
            if result.is_ok() {
                return Some(result);
            }
            outcome = Some(result);
        }
        if header.kid.is_some() && exact.is_empty() {
            return None;
        }
        outcome
    }

    async fn decode_with_jwks(
        &self,
        header: &jsonwebtoken::Header,
        token: &str,
    ) -> Result<HashMap<String, Value>, TokenRejected> {
        let Some(url) = &self.config.jwks_url else { return Err(TokenRejected::UnknownKey) };
        if let Some(result) = self.decode_with(&self.jwks.read().keys, header, token) {
            return result;
        }
        let stale = self.jwks.read().fetched.is_none_or(|at| at.elapsed() >= JWKS_MIN_REFRESH);
        if stale {
            match self.fetch_jwks(url).await {
                Ok(keys) => *self.jwks.write() = Jwks { keys, fetched: Some(Instant::now()) },
                Err(error) => {
                    tracing::warn!(%url, %error, "cannot fetch the JWKS");
                    self.jwks.write().fetched = Some(Instant::now());
                }
            }
        }
        self.decode_with(&self.jwks.read().keys, header, token).unwrap_or(Err(TokenRejected::UnknownKey))
    }

    async fn fetch_jwks(&self, url: &str) -> Result<Vec<Key>, String> {
        let set: JwkSet = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| {
                // Only asymmetric keys: a JWKS never carries shared secrets.
                let algorithm = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    _ => return None,
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(Key { kid: jwk.common.key_id.clone(), algorithm, key })
            })
            .collect();
        Ok(keys)
    }

    fn principal(&self, claims: HashMap<String, Value>) -> Result<Principal, TokenRejected> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        let sub = text("sub").ok_or_else(|| TokenRejected::Claims("`sub` must be a string".into()))?;
        let role_claim = &self.config.role_claim;
        let role: Role = text(role_claim)
            .ok_or_else(|| TokenRejected::Claims(format!("`{role_claim}` is missing")))?
            .parse()
            .map_err(|e: mark1_actors::domain::access::UnknownRole| TokenRejected::Claims(e.to_string()))?;
        let namespace = text(&self.config.namespace_claim);
        if namespace.is_none() && role != Role::Admin {
            return Err(TokenRejected::Claims(format!(
                "`{}` is required for role {role}",
                self.config.namespace_claim
            )));
        }
        Ok(Principal { subject: format!("jwt:{sub}"), role, namespace })
    }
}

/// The checks a token must pass, made once per algorithm this node accepts.
fn validation(config: &JwtConfig, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = config.leeway.as_secs();
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    if let Some(issuer) = &config.issuer {
        validation.set_issuer(&[issuer]);
    }
    if let Some(audience) = &config.audience {
        validation.set_audience(&[audience]);
    }
    validation
}
