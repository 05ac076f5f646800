//! HTTPS at the edge (DESIGN §9): rustls on the ring provider, certificates from PEM.
//!
//! [`TlsListener`] is an axum [`Listener`], so TLS and plain HTTP share `axum::serve` and
//! its graceful shutdown. Handshakes run in their own tasks, off the accept loop: a
//! client that stalls its handshake (or speaks plain HTTP to the port) holds up no one.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// A handshake not finished by then is dropped, so idle sockets cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handshaken but not yet taken by the server.
const READY_BACKLOG: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls: cannot read {}: {source}", file.display())]
    Read { file: PathBuf, source: io::Error },
    #[error("server.tls.cert_file {}: {detail}", file.display())]
    BadCertificate { file: PathBuf, detail: String },
    #[error("server.tls.key_file {}: {detail}", file.display())]
    BadKey { file: PathBuf, detail: String },
    #[error("server.tls: the certificate and key were refused: {0}")]
    Refused(rustls::Error),
}

/// The rustls server configuration of `tls`: a certificate chain (leaf first) and a
/// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key, both PEM.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates(&tls.cert_file)?;
    let key = private_key(&tls.key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Refused)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Refused)?;
    // axum is built with HTTP/1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read { file: file.to_path_buf(), source })
}

fn certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |detail: String| TlsError::BadCertificate { file: file.to_path_buf(), detail };
    let chain = CertificateDer::pem_slice_iter(&read(file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(bad("holds no `BEGIN CERTIFICATE` block".into()));
    }
    Ok(chain)
}

fn private_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(file)?).map_err(|e| TlsError::BadKey {
        file: file.to_path_buf(),
        detail: match e {
            pem::Error::NoItemsFound => "holds no PKCS#8, RSA or EC private key".into(),
            e => format!("not a PEM private key ({e})"),
        },
    })
}

/// Accepts TCP connections and hands on those whose TLS handshake succeeded.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_BACKLOG);
        let acceptor = TlsAcceptor::from(config);
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off rather than spin.
                        tracing::warn!(%error, "https accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        // Scanners and plain-HTTP clients end here; not worth a warning each.
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "tls handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, addr, accepting })
    }
}

/// The server drops its listener when it shuts down; the accept loop goes with it.
impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, cert: &str, key: &str) -> TlsConfig {
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        TlsConfig { cert_file, key_file }
    }

    #[test]
    fn errors_name_the_file_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let signed = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (signed.cert.pem(), signed.signing_key.serialize_pem());
        assert!(server_config(&config(dir.path(), &cert, &key)).is_ok());

        let missing =
            TlsConfig { cert_file: dir.path().join("nope.pem"), key_file: dir.path().join("key.pem") };
        let e = server_config(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");

        let e = server_config(&config(dir.path(), "not pem", &key)).unwrap_err().to_string();
        assert!(
            e.contains("cert_file") && e.contains("cert.pem") && e.contains("no `BEGIN CERTIFICATE`"),
            "{e}"
        );

        let e = server_config(&config(dir.path(), &cert, &cert)).unwrap_err().to_string();
        assert!(e.contains("key_file") && e.contains("key.pem") && e.contains("no PKCS#8"), "{e}");

        let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let e = server_config(&config(dir.path(), &cert, &other)).unwrap_err().to_string();
        assert!(e.contains("refused"), "a key that does not match the certificate: {e}");
    }
}
