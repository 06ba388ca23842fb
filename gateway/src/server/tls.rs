//! TLS on the gateway's own listener (`--tls-cert` / `--tls-key`): rustls with the ring
//! provider (aws-lc would need cmake to build), offering HTTP/2 and HTTP/1.1 by ALPN.

use std::{path::Path, sync::Arc};

use rustls_pki_types::{
    CertificateDer, PrivateKeyDer,
    pem::{self, PemObject as _},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{ServerConfig, crypto::ring},
};

use crate::startup::StartError;

/// Builds the acceptor from a PEM certificate chain (leaf first) and a PEM private key.
///
/// # Errors
/// Unreadable files, no certificate or key in them, or a key that does not match.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, StartError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .map_err(file_error("reading certificates from", cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_error("parsing certificates in", cert_file))?;
    if certs.is_empty() {
        return Err(StartError::NoCertificate(cert_file.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(file_error("reading the private key from", key_file))?;
    acceptor_from(certs, key)
}

/// The error of reading `path`, for `map_err`.
fn file_error(what: &'static str, path: &Path) -> impl FnOnce(pem::Error) -> StartError {
    let path = path.to_owned();
    move |source| StartError::TlsFile { what, path, source }
}

/// Builds the acceptor from DER certificates and key (for callers that hold them in memory).
///
/// # Errors
/// A key that does not match the certificate, or one rustls cannot use.
pub fn acceptor_from(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, StartError> {
    let tls_error = |what| move |source| StartError::Tls { what, source };
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(tls_error("TLS protocol versions"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(tls_error("the TLS certificate and key do not fit together"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_file_without_a_certificate_is_a_start_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "no PEM block here\n").expect("the file is written");
        let Err(error) = acceptor(&cert, &cert) else {
            panic!("a file without a certificate was accepted");
        };
        assert!(
            matches!(&error, StartError::NoCertificate(path) if path == &cert),
            "{error}"
        );
        assert!(error.to_string().contains("cert.pem"), "{error}");
    }
}
