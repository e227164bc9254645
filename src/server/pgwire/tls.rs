//! TLS for the Postgres wire protocol: `[pgwire] tls_cert` and `tls_key`
//! (PEM files) → a rustls acceptor (ring provider) that answers SSLRequest
//! (and direct TLS, ALPN `postgresql`).

use std::path::Path;
use std::sync::Arc;

use pgwire::tokio::tokio_rustls::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::PgwireConfig;
use crate::error::{Error, Result};

/// The acceptor of the configured certificate, or `None` without one.
pub fn acceptor(config: &PgwireConfig) -> Result<Option<TlsAcceptor>> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    Ok(Some(load(cert, key)?))
}

fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let bad = |what: &str, path: &Path, e: String| {
        Error::Config(format!("pgwire.{what} {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("tls_cert", cert, e.to_string()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad("tls_cert", cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(
            "tls_cert",
            cert,
            "no PEM certificate in the file".into(),
        ));
    }
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| bad("tls_key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("pgwire TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| {
            Error::Config(format!(
                "pgwire.tls_cert {} and pgwire.tls_key {} do not make a certificate: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    server.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
