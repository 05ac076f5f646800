//! HTTPS: a CA and a server certificate made at test time, and clients that trust it or not.

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;

use super::support::{json_of, serve_with, token};

/// A test CA, and a certificate it signed for `localhost` and `127.0.0.1`.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

fn client(trusted: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().use_rustls_tls().tls_built_in_root_certs(false);
    if let Some(pem) = trusted {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn with_a_certificate_the_edge_speaks_https_only_to_clients_that_trust_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let test_pki = pki();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &test_pki.cert_pem).unwrap();
    std::fs::write(&key, &test_pki.key_pem).unwrap();
    let s = serve_with(|l| {
        l.set("server.tls.cert_file", cert.to_str().unwrap())
            .set("server.tls.key_file", key.to_str().unwrap())
    })
    .await;
    let port = s.edge.local_addr().port();
    let trusting = client(Some(&test_pki.ca_pem));
    let developer = token("developer", Some("team-a"));

    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{port}/v1/whoami");
        let (status, body) = json_of(trusting.get(&url).bearer_auth(&developer).send().await.unwrap()).await;
        assert_eq!((status, &body["role"]), (200, &json!("developer")), "{host}: {body}");
    }

    let plain = s.http.get(format!("http://127.0.0.1:{port}/health")).send().await;
    assert!(plain.is_err(), "plain HTTP to the HTTPS port must fail: {plain:?}");
    let untrusting = client(None).get(format!("https://localhost:{port}/health")).send().await;
    let error = untrusting.expect_err("a client without the test CA must refuse the certificate");
    assert!(format!("{error:?}").to_lowercase().contains("certificate"), "{error:?}");
    let other_ca = client(Some(&pki().ca_pem)).get(format!("https://localhost:{port}/health")).send().await;
    assert!(other_ca.is_err(), "a client trusting another CA must refuse: {other_ca:?}");

    // Graceful shutdown over TLS: a request in flight is answered, then the port closes.
    let in_flight = tokio::spawn({
        let (trusting, developer) = (trusting.clone(), developer.clone());
        async move {
            let url = format!("https://localhost:{port}/v1/tasks?wait=5s");
            let body = json!({"agent": "sleeper", "input": {"ms": 300}});
            trusting.post(url).bearer_auth(developer).json(&body).send().await.map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let node = s.node.clone();
    let started = std::time::Instant::now();
    s.edge.shutdown(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(4), "the edge drained instead of timing out");
    assert_eq!(in_flight.await.unwrap().unwrap(), 200, "the request in flight finished");
    let after = trusting.get(format!("https://localhost:{port}/health")).send().await;
    assert!(after.is_err(), "no connection after shutdown: {after:?}");
    let report = node.shutdown(Duration::from_secs(10)).await;
    assert!(report.stopped_cleanly, "{report:?}");
}

#[tokio::test]
async fn a_bad_key_file_stops_the_edge_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let test_pki = pki();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("broken-key.pem"));
    std::fs::write(&cert, &test_pki.cert_pem).unwrap();
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n").unwrap();
    let config = mark1::config::ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", crate::support::unique("tls-bad"))
        .set("node.data_dir", dir.path().to_str().unwrap())
        .set("server.tls.cert_file", cert.to_str().unwrap())
        .set("server.tls.key_file", key.to_str().unwrap())
        .load()
        .unwrap();
    let node = std::sync::Arc::new(
        mark1::Node::builder().config(config).build().await.unwrap().start().await.unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error =
        mark1::http::Edge::start_on(node.clone(), listener).await.err().expect("the edge must not start");
    let text = error.to_string();
    assert!(text.contains("server.tls.key_file") && text.contains("broken-key.pem"), "{text}");
    assert!(node.shutdown(Duration::from_secs(10)).await.stopped_cleanly);
}
