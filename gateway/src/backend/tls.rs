//! TLS to backends: an `https://` backend URI is reached over rustls (with ring), trusting the
//! webpki (Mozilla) roots and, optionally, a private CA (`--backend-ca`).

use std::{fmt, path::Path};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::setup::SetupError;

/// The trust for `https://` backends beyond the webpki roots.
#[derive(Clone, Default)]
pub struct BackendTls {
    ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTls")
            .field("private_ca", &self.ca_pem.is_some())
            .finish()
    }
}

impl BackendTls {
    /// Also trusts the CA certificate(s) in `pem`.
    pub fn with_ca_pem(pem: impl Into<Vec<u8>>) -> Self {
        Self {
            ca_pem: Some(pem.into()),
        }
    }

    /// Also trusts the CA certificate(s) in the PEM file at `path`.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn from_ca_file(path: &Path) -> Result<Self, SetupError> {
        let pem = std::fs::read(path).map_err(|e| SetupError::CaFile {
            path: path.to_owned(),
            source: e,
        })?;
        Ok(Self::with_ca_pem(pem))
    }
}

/// Whether `uri` is `https://`.
pub(super) fn is_secure(uri: &str) -> bool {
    uri.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// Adds TLS to `endpoint` when `uri` is `https://`; a plain `http://` endpoint is returned as
/// it is (HTTP/2 without TLS).
pub(super) fn configure(
    endpoint: Endpoint,
    uri: &str,
    tls: Option<&BackendTls>,
) -> Result<Endpoint, SetupError> {
    if !is_secure(uri) {
        return Ok(endpoint);
    }
    let mut config = ClientTlsConfig::new().with_webpki_roots();
    if let Some(pem) = tls.and_then(|t| t.ca_pem.as_ref()) {
        config = config.ca_certificate(Certificate::from_pem(pem));
    }
    endpoint
        .tls_config(config)
        .map_err(|source| SetupError::Tls {
            uri: uri.to_owned(),
            source,
        })
}
