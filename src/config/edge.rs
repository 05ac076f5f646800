//! `[server]` and `[auth]`: the HTTP edge, its TLS and how callers authenticate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// HTTP listen address. `None` (only settable from code) means no HTTP edge.
    #[serde(deserialize_with = "de_socket_addr")]
    pub listen: Option<SocketAddr>,
    /// Largest request body accepted, in bytes (413 beyond it).
    pub max_body_bytes: usize,
    /// How long a handler waits for an actor's answer before answering 504.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Longest `?wait=` a caller may ask for.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Events buffered per WebSocket client; a client that falls this far behind is dropped.
    pub ws_buffer: usize,
    /// HTTPS with these PEM files; plain HTTP when unset.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            max_body_bytes: 1 << 20,
            call_timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(300),
            ws_buffer: 1024,
            tls: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// SocketAddr's own error ("invalid socket address syntax") does not show the value.
fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid socket address {text:?}, expected IP:PORT such as 127.0.0.1:8080"
        ))
    })
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// JSON Web Tokens; API keys need no configuration.
    pub jwt: JwtConfig,
}

/// Where JWT verification keys come from; tokens are refused when none is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Environment variable holding the HS256 shared secret.
    pub hs256_secret_env: Option<String>,
    /// File holding the HS256 shared secret.
    pub hs256_secret_file: Option<PathBuf>,
    /// PEM public keys for RS256 or EdDSA tokens.
    pub public_keys: Vec<PublicKeyConfig>,
    /// An external issuer's JWKS document (RS256, EdDSA), fetched when a token's key is
    /// not among those configured (at most every 30 s).
    pub jwks_url: Option<String>,
    /// Required `iss` claim.
    pub issuer: Option<String>,
    /// Required `aud` claim.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`; at most 5 minutes.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Claim holding the role (admin, operator, developer, viewer, agent).
    pub role_claim: String,
    /// Claim holding the namespace; required for every role but admin.
    pub namespace_claim: String,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            hs256_secret_env: None,
            hs256_secret_file: None,
            public_keys: Vec::new(),
            jwks_url: None,
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
            role_claim: "role".into(),
            namespace_claim: "namespace".into(),
        }
    }
}

impl JwtConfig {
    /// Whether any key source is configured, i.e. tokens can be accepted at all.
    pub fn enabled(&self) -> bool {
        self.hs256_secret_env.is_some()
            || self.hs256_secret_file.is_some()
            || !self.public_keys.is_empty()
            || self.jwks_url.is_some()
    }

    /// Errors name the key under `auth.jwt`.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.hs256_secret_env.is_some() && self.hs256_secret_file.is_some() {
            return Err(("hs256_secret_env", "set hs256_secret_env or hs256_secret_file, not both".into()));
        }
        if self.enabled() {
            if self.issuer.as_deref().is_none_or(str::is_empty) {
                return Err(("issuer", "required when tokens are accepted: the expected `iss`".into()));
            }
            if self.audience.as_deref().is_none_or(str::is_empty) {
                return Err(("audience", "required when tokens are accepted: the expected `aud`".into()));
            }
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(("leeway", "at most 5m: a longer skew keeps expired tokens alive".into()));
        }
        if let Some(url) = &self.jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(("jwks_url", format!("{url:?} is not an http(s) URL")));
            }
        }
        Ok(())
    }

    pub(super) fn resolve_paths(&mut self, resolve: &impl Fn(&Path) -> PathBuf) {
        if let Some(file) = &mut self.hs256_secret_file {
            *file = resolve(file);
        }
        for key in &mut self.public_keys {
            key.file = resolve(&key.file);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    pub algorithm: PublicKeyAlgorithm,
    /// PEM file of the public key.
    pub file: PathBuf,
    /// The `kid` tokens signed with it carry; when unset, it is tried for any token of its
    /// algorithm after the keys whose `kid` matches.
    pub kid: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublicKeyAlgorithm {
    RS256,
    EdDSA,
}
