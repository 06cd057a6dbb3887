//! The connector under every transport: plain HTTP, or TLS (rustls) for `https://` URLs,
//! trusting the system's certificate authorities and the configured CA file.

use std::{path::Path, sync::Arc};

use engine_types::EngineError;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls_pki_types::{CertificateDer, pem::PemObject};

/// The connector for `http://` and `https://` URLs.
pub(super) type Connector = HttpsConnector<HttpConnector>;

/// A connector trusting the system's roots and those in `ca_path` (a PEM file), if given.
pub(super) fn connector(ca_path: Option<&Path>) -> Result<Connector, EngineError> {
    let mut roots = rustls::RootCertStore::empty();
    // The system's store may be missing or partly unreadable (minimal containers): the CA file
    // still works, and a missing root shows up as a certificate error at connect.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_path {
        let fail = |why: String| {
            EngineError::config(
                "tls_ca_path",
                format!(
                    "{}: {why}; point it at a PEM file of CA certificates",
                    path.display()
                ),
            )
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail("no certificate in it".to_owned()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| fail(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| EngineError::config("tls", e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build())
}
