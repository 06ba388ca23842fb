//! The API being served, held whole behind one atomic pointer so a descriptor reload swaps it
//! at once: its router (routes, request mapping, validation, the OpenAPI document and docs),
//! the version of the descriptors it was built from and when they were loaded.
//!
//! Each request loads the pointer once ([`ApiService`]) and is answered by that version to
//! the end: a unary call holds its version's state until it returns, a stream until it ends,
//! so a swap never mixes two versions in one request and never cuts one short. What must
//! outlive a version (the backend and its replicas' health, the concurrency permits, the
//! metrics) is owned outside it and only shared with each version.
//!
//! `arc-swap` rather than a lock: every request reads the pointer, a reload writes it rarely,
//! and readers never wait for a writer.

use std::{
    convert::Infallible,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::SystemTime,
};

use arc_swap::ArcSwap;
use axum::{Router, extract::Request, response::Response};
use futures::future::BoxFuture;
use prost_reflect::DescriptorPool;
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;

/// Which descriptors an API was built from: the first 16 hex digits of the SHA-256 of its
/// descriptor set in a canonical form (each file's name and encoded bytes, options included,
/// in file name order), so the same descriptors give the same version whichever way they were
/// read, and every gateway in a fleet names them alike. With gRPC API Configuration files, the
/// files are hashed in too ([`DescriptorVersion::with_config`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DescriptorVersion(String);

impl DescriptorVersion {
    /// The version of `pool` (as loaded, before the standard types are added).
    pub fn of(pool: &DescriptorPool) -> Self {
        let mut files: Vec<_> = pool.files().collect();
        files.sort_by(|a, b| a.name().cmp(b.name()));
        let mut hash = Sha256::new();
        for file in files {
            // Length-prefixed, so no two different sets run together into the same bytes.
            let name = file.name().as_bytes();
            let bytes = file.encode_to_vec();
            hash.update((name.len() as u64).to_be_bytes());
            hash.update(name);
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(&bytes);
        }
        let digest = hash.finalize();
        Self(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }

    /// The version of `self`'s descriptors served with the rules of `config`: the same
    /// descriptors under other rules are another API. Without configuration files, the
    /// descriptors' version itself.
    #[must_use]
    pub fn with_config(self, config: &crate::rules::ServiceConfig) -> Self {
        let Some(digest) = config.digest else {
            return self;
        };
        let mut hash = Sha256::new();
        hash.update(self.0.as_bytes());
        hash.update(digest);
        let digest = hash.finalize();
        Self(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }

    /// The version as text (16 hex digits).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DescriptorVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The descriptors of the served API: their version and when they were loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Their version.
    pub version: DescriptorVersion,
    /// When the API built from them started being served.
    pub at: SystemTime,
}

impl Loaded {
    /// When they were loaded, in seconds since the Unix epoch.
    pub fn timestamp_seconds(&self) -> f64 {
        self.at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    /// When they were loaded, as RFC 3339 (UTC, seconds).
    pub fn rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(self.at).to_string()
    }
}

/// Where a version's routes came from, as `/readyz` shows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteSources {
    /// Bindings by kind of source: annotation, configuration, auto.
    pub(crate) counts: [(&'static str, usize); 3],
    /// The configuration files read.
    pub(crate) files: Vec<String>,
    /// Whether auto-mapping was on.
    pub(crate) auto_mapping: bool,
}

/// One built version of the API.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    /// Everything a request to a path not owned by the gateway meets, plus the docs.
    pub(crate) router: Router,
    /// How many routes it has.
    pub(crate) routes: usize,
    /// Where its routes came from.
    pub(crate) sources: RouteSources,
    /// Its descriptors' version.
    pub(crate) loaded: Loaded,
    /// Its descriptors, with the standard types.
    pub(crate) pool: DescriptorPool,
    /// Its Connect procedures: every method of `pool`.
    pub(crate) connect: crate::connect::Procedures,
}

/// What a reload did, as counted in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New descriptors were swapped in.
    Changed,
    /// The descriptors read were those already served.
    Unchanged,
    /// Backend replicas answered different descriptors; the served API stays.
    Disagreed,
    /// The descriptors could not be read or built; the served API stays.
    Failed,
}

impl Outcome {
    /// Every outcome, in the order `/metrics` lists them.
    pub const ALL: [Self; 4] = [
        Self::Changed,
        Self::Unchanged,
        Self::Disagreed,
        Self::Failed,
    ];

    /// Its `result` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Changed => "changed",
            Self::Unchanged => "unchanged",
            Self::Disagreed => "disagreed",
            Self::Failed => "failed",
        }
    }
}

/// The served API (cheap to clone: clones share it).
#[derive(Clone)]
pub struct ServedApi {
    current: Arc<ArcSwap<Api>>,
    /// Reloads by [`Outcome`], in [`Outcome::ALL`] order.
    reloads: Arc<[AtomicU64; 4]>,
}

impl fmt::Debug for ServedApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedApi")
            .field("loaded", &self.loaded())
            .finish_non_exhaustive()
    }
}

impl ServedApi {
    pub(crate) fn new(api: Api) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(api)),
            reloads: Arc::default(),
        }
    }

    /// The descriptors served now.
    pub fn loaded(&self) -> Loaded {
        self.current.load().loaded.clone()
    }

    /// Where the routes served now came from.
    pub(crate) fn sources(&self) -> RouteSources {
        self.current.load().sources.clone()
    }

    /// The version served now.
    pub(crate) fn current(&self) -> Arc<Api> {
        self.current.load_full()
    }

    /// Serves `api` from the next request on.
    pub(crate) fn swap(&self, api: Api) {
        self.current.store(Arc::new(api));
    }

    /// Counts a reload.
    pub fn count(&self, outcome: Outcome) {
        let index = Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or_default();
        if let Some(counter) = self.reloads.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many reloads ended with `outcome`.
    pub fn reloads(&self, outcome: Outcome) -> u64 {
        Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .and_then(|i| self.reloads.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The service answering each request with the version served when it arrives.
    pub(crate) fn service(&self) -> ApiService {
        ApiService(self.clone())
    }
}

/// Routes each request to the version served when it arrives ([`ServedApi::service`]).
#[derive(Debug, Clone)]
pub(crate) struct ApiService(ServedApi);

impl tower::Service<Request> for ApiService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // An axum router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // One load per request: the whole request sees this version.
        let router = self.0.current.load().router.clone();
        Box::pin(router.oneshot(request))
    }
}
