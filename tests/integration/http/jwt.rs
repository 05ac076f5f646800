//! Tokens signed with asymmetric keys: a configured Ed25519 public key, and an external
//! issuer's JWKS document served over real HTTP.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};

use super::support::{claims, json_of, serve_with};

/// A fresh Ed25519 key: its PKCS#8 document (to sign) and public key bytes.
fn ed25519() -> (Vec<u8>, Vec<u8>) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    (pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec())
}

/// The SubjectPublicKeyInfo PEM of an Ed25519 public key (RFC 8410).
fn public_pem(public: &[u8]) -> String {
    let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    der.extend_from_slice(public);
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
}

fn sign_ed(claims: &Value, pkcs8: &[u8], kid: Option<&str>) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(pkcs8)).unwrap()
}

#[tokio::test]
async fn a_configured_ed25519_public_key_verifies_tokens_and_no_other_key_does() {
    let (pkcs8, public) = ed25519();
    let (other, _) = ed25519();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("issuer.pem");
    std::fs::write(&pem, public_pem(&public)).unwrap();
    let s = serve_with(|l| {
        l.set("auth.jwt.public_keys", json!([{"algorithm": "EdDSA", "file": pem.to_str().unwrap()}]))
    })
    .await;
    let whoami = |token: String| s.http.get(s.url("/v1/whoami")).bearer_auth(token).send();
    let (status, me) =
        json_of(whoami(sign_ed(&claims("operator", Some("team-b")), &pkcs8, None)).await.unwrap()).await;
    assert_eq!((status, &me["role"]), (200, &json!("operator")), "{me}");
    let (status, _) =
        json_of(whoami(sign_ed(&claims("operator", Some("team-b")), &other, None)).await.unwrap()).await;
    assert_eq!(status, 401, "a token signed by another key is refused");
    s.stop().await;
}

#[tokio::test]
async fn keys_from_an_issuers_jwks_verify_tokens_by_kid() {
    let (pkcs8, public) = ed25519();
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(&public)}]});
    let issuer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", issuer.local_addr().unwrap());
    let app =
        axum::Router::new().route("/jwks.json", axum::routing::get(move || async move { axum::Json(jwks) }));
    let server = tokio::spawn(async move { axum::serve(issuer, app).await });
    let s = serve_with(|l| l.set("auth.jwt.jwks_url", jwks_url.as_str())).await;
    let whoami = |token: String| s.http.get(s.url("/v1/whoami")).bearer_auth(token).send();
    let (status, me) =
        json_of(whoami(sign_ed(&claims("viewer", Some("team-a")), &pkcs8, Some("k1"))).await.unwrap()).await;
    assert_eq!((status, &me["namespace"]), (200, &json!("team-a")), "{me}");
    let (status, body) =
        json_of(whoami(sign_ed(&claims("viewer", Some("team-a")), &pkcs8, Some("k2"))).await.unwrap()).await;
    assert_eq!(status, 401, "an unknown kid is refused: {body}");
    s.stop().await;
    server.abort();
}

#[tokio::test]
async fn every_configured_key_is_tried_and_a_named_key_is_looked_up_in_the_jwks() {
    let (first, first_public) = ed25519();
    let (second, second_public) = ed25519();
    let (issued, issued_public) = ed25519();
    let dir = tempfile::tempdir().unwrap();
    let pem = |name: &str, public: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, public_pem(public)).unwrap();
        path.to_str().unwrap().to_string()
    };
    let keys = json!([{"algorithm": "EdDSA", "file": pem("a.pem", &first_public)},
        {"algorithm": "EdDSA", "file": pem("b.pem", &second_public)}]);
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "rotated",
        "x": URL_SAFE_NO_PAD.encode(&issued_public)}]});
    let issuer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", issuer.local_addr().unwrap());
    let app =
        axum::Router::new().route("/jwks.json", axum::routing::get(move || async move { axum::Json(jwks) }));
    let server = tokio::spawn(async move { axum::serve(issuer, app).await });
    let s =
        serve_with(|l| l.set("auth.jwt.public_keys", keys).set("auth.jwt.jwks_url", jwks_url.as_str())).await;
    let whoami = |token: String| s.http.get(s.url("/v1/whoami")).bearer_auth(token).send();
    let claims = claims("viewer", Some("team-a"));
    for (what, token) in [
        ("the first configured key", sign_ed(&claims, &first, None)),
        ("the second configured key", sign_ed(&claims, &second, None)),
        ("a JWKS key named by kid, past keys without one", sign_ed(&claims, &issued, Some("rotated"))),
    ] {
        let (status, body) = json_of(whoami(token).await.unwrap()).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
    s.stop().await;
    server.abort();
}
