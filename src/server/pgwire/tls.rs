//! TLS for the Postgres wire protocol: `[pgwire] tls_cert` and `tls_key`
//! (PEM files) → a rustls acceptor (ring provider) that answers SSLRequest
//! (and direct TLS, ALPN `postgresql`). [`server_config`] also checks
//! Flight SQL's `[flight]` certificate.

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
    let mut server = server_config("pgwire", cert, key)?;
    server.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// The rustls server config of a PEM certificate chain and key; errors
/// name the config keys (`<section>.tls_cert`, `<section>.tls_key`) and
/// the files.
pub fn server_config(section: &str, cert: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    let bad = |what: &str, path: &Path, e: String| {
        Error::Config(format!("{section}.{what} {}: {e}", path.display()))
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
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("{section} TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| {
            Error::Config(format!(
                "{section}.tls_cert {} and {section}.tls_key {} do not make a certificate: {e}",
                cert.display(),
                key.display()
            ))
        })
}
