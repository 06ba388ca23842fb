//! Why a backend could not be set up: a URI or TLS trust that cannot be used, no replica, no
//! runtime to run on. A start-up concern, apart from the statuses calls fail with.

use std::path::PathBuf;

/// A backend that cannot be set up as given.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A backend URI that does not parse, or names no host.
    #[error("invalid backend URI {uri:?}: {why}")]
    Uri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        why: String,
    },
    /// A balanced backend with no URI at all.
    #[error("a balanced backend needs at least one URI")]
    NoReplicas,
    /// Set up outside a Tokio runtime: the connections and health watchers need one.
    #[error("the backend must be set up within a Tokio runtime")]
    NoRuntime,
    /// The `--backend-ca` file could not be read.
    #[error("reading the backend CA {}: {source}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be configured for an `https://` backend.
    #[error("TLS for the backend {uri:?}: {source}")]
    Tls {
        /// The backend's URI.
        uri: String,
        /// tonic's reason.
        #[source]
        source: tonic::transport::Error,
    },
}
