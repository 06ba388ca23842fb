//! Why the gateway could not start: its flags, its descriptors, its TLS files, binding or
//! serving its listener. Apart from [`crate::Error`], which is what a request is answered
//! with: a start-up failure has no HTTP status or gRPC code, it ends the process with a
//! message.

use std::{net::SocketAddr, path::PathBuf};

use rustls_pki_types::pem;
use tokio_rustls::rustls;

use crate::{app::BuildError, descriptors::DescriptorError};

/// A failure before (or while) the gateway serves: what `serve` and `openapi` return.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A `--cors-origin` that is no valid header value.
    #[error("invalid CORS origin {0:?}")]
    CorsOrigin(String),
    /// A `--cache-control` entry that is not `METHOD=VALUE`.
    #[error("{0}")]
    CacheControl(String),
    /// A backend address or the `--backend-ca` file was refused.
    #[error("{0}")]
    Backend(#[from] crate::backend::SetupError),
    /// The descriptors could not be read or decoded.
    #[error("{0}")]
    Descriptors(#[from] DescriptorError),
    /// Neither `--descriptor-set` nor `--reflect`, and the binary has no API of its own.
    #[error("no descriptors: give --descriptor-set FILE or --reflect")]
    NoDescriptors,
    /// `--reflect`, and no backend answered reflection: each one's failure.
    #[error("reading descriptors by reflection failed on every backend: {}", .0.join("; "))]
    Reflection(Vec<String>),
    /// The router could not be built.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// A gRPC API Configuration file cannot be served (`openapi`; `serve` reports it as
    /// [`StartError::Build`]).
    #[error("{0}")]
    Configuration(#[from] crate::rules::ConfigError),
    /// A TLS certificate or key file could not be read or parsed.
    #[error("{what} {}: {source}", .path.display())]
    TlsFile {
        /// What was being read (`reading certificates from`, ...).
        what: &'static str,
        path: PathBuf,
        /// rustls-pki-types' reason.
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate found in {}", .0.display())]
    NoCertificate(PathBuf),
    /// rustls refused the configuration (a key that does not match the certificate, ...).
    #[error("{what}: {source}")]
    Tls {
        /// Which step failed.
        what: &'static str,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The listener failed while serving.
    #[error("{0}")]
    Serve(#[from] std::io::Error),
}
