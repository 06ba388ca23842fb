//! One version of the API built from descriptors: the route table, the request mapping and
//! validation of each method, the OpenAPI document and docs, all from the same pool; and the
//! [`Reloader`] that builds another version and swaps it in ([`crate::served`]).
//!
//! A version shares what must outlive it (the backend, the call budgets) and owns the
//! rest, so building one never touches the version being served.

use std::{sync::Arc, time::Duration};

use axum::{Router, handler::Handler as _};
use prost_reflect::DescriptorPool;
use tower_http::decompression::RequestDecompressionLayer;

use super::{collisions, handler};
use crate::{
    admission::Admission,
    backend::Backend,
    calls::{BodyRead, Calls},
    constraints::Constraints,
    descriptors,
    error::ErrorFormat,
    json::JsonOptions,
    live::{self, LiveRoutes},
    openapi::{self, ApiInfo},
    routes::RouteTable,
    rules::{Bindings, ConfigError, Mapping, MappingOptions},
    served::{Api, DescriptorVersion, Loaded, Outcome, RouteSources, ServedApi},
    transcode::RequestOptions,
};

/// Whether and how `/openapi.json` and `/docs` are served.
#[derive(Clone, Default)]
pub(super) enum Docs {
    /// Served, with an `info` section named after the routed services.
    #[default]
    Generic,
    /// Served with this `info`.
    Info(ApiInfo),
    /// Served with the `info` this makes of each version's bindings.
    From(Arc<dyn Fn(&Bindings) -> ApiInfo + Send + Sync>),
    /// Not served.
    Off,
}

impl std::fmt::Debug for Docs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Generic => f.write_str("Generic"),
            Self::Info(info) => f.debug_tuple("Info").field(info).finish(),
            Self::From(_) => f.write_str("From(..)"),
            Self::Off => f.write_str("Off"),
        }
    }
}

/// Everything a version is built with besides its descriptors.
#[derive(Debug)]
pub(super) struct Recipe {
    pub(super) backend: Backend,
    pub(super) admission: Admission,
    pub(super) json: JsonOptions,
    pub(super) error_format: ErrorFormat,
    pub(super) docs: Docs,
    /// Whether the live page (and the `/docs` panel) may be served.
    pub(super) live_page: bool,
    /// Without constraints: each version has its own.
    pub(super) request: RequestOptions,
    pub(super) body_limit: usize,
    pub(super) max_query_length: usize,
    pub(super) max_metadata_bytes: usize,
    pub(super) max_response_bytes: usize,
    pub(super) body_read: BodyRead,
    pub(super) timeout: Duration,
    pub(super) stream_timeout: Duration,
    pub(super) sse_keepalive: Option<Duration>,
    /// Where each version reads its configuration rules, auto-mapping and service filter.
    pub(super) mapping: MappingOptions,
    /// `Cache-Control` of successful `GET`/`HEAD` answers, per method.
    pub(super) cache_control: crate::conditional::CacheControl,
}

impl Recipe {
    /// The version of the API `pool` describes under `mapping`.
    ///
    /// Methods whose annotations are invalid are logged and left out; routes hidden by a
    /// gateway path are logged.
    ///
    /// # Errors
    /// A configuration rule that does not fit the descriptors.
    pub(super) fn api(
        &self,
        pool: DescriptorPool,
        mapping: &Mapping,
        version: DescriptorVersion,
    ) -> Result<Api, ConfigError> {
        let pool = descriptors::with_standard_types(pool);
        let bindings = Bindings::build(&pool, mapping)?;
        for skipped in &bindings.skipped {
            tracing::warn!(
                method = skipped.method,
                reason = skipped.reason,
                "method not routed"
            );
        }
        let table = RouteTable::new(&bindings);
        for route in table.routes() {
            tracing::debug!(
                http = %format_args!("{} {}", route.binding.http_method, route.binding.template),
                grpc = %route.grpc_path,
                rule = %route.binding.source,
                "route"
            );
        }
        collisions::warn(&table);
        let info = match &self.docs {
            Docs::Off => None,
            Docs::Info(info) => Some(info.clone()),
            Docs::From(info) => Some(info(&bindings)),
            Docs::Generic => Some(generic_info(&bindings)),
        };
        let doc =
            info.map(|info| openapi::document_with(&bindings, &self.json, info, self.error_format));
        let live = if self.live_page {
            LiveRoutes::from_bindings(&bindings)
        } else {
            LiveRoutes::default()
        };
        let live_page = !live.is_empty() && !live::claimed_by_api(&table);
        let routes = table.routes().len();
        let sources = RouteSources {
            counts: bindings.counts(),
            files: mapping.config.files.clone(),
            auto_mapping: mapping.auto,
        };
        tracing::info!(
            routes,
            annotation = sources.counts[0].1,
            configuration = sources.counts[1].1,
            auto = sources.counts[2].1,
            skipped = bindings.skipped.len(),
            %version,
            "routes built"
        );

        let request = RequestOptions {
            constraints: Arc::new(Constraints::from_pool(&pool)),
            ..self.request.clone()
        };
        let table = Arc::new(table);
        let calls = Arc::new(Calls {
            backend: self.backend.clone(),
            pool: pool.clone(),
            json: self.json,
            request,
            body_limit: self.body_limit,
            max_metadata_bytes: self.max_metadata_bytes,
            max_response_bytes: self.max_response_bytes,
            body_read: self.body_read,
            sse_keepalive: self.sse_keepalive,
            cache_control: self.cache_control.clone(),
        });
        let connect = crate::connect::Procedures::new(
            Arc::clone(&calls),
            Arc::clone(&table),
            crate::connect::Limits {
                timeout: self.timeout,
                stream_timeout: self.stream_timeout,
                max_query_length: self.max_query_length,
            },
            self.admission.clone(),
        );
        let shared = Arc::new(handler::Shared {
            table,
            calls,
            max_query_length: self.max_query_length,
            timeout: self.timeout,
            stream_timeout: self.stream_timeout,
            admission: self.admission.clone(),
        });

        // Request bodies are decompressed (gzip, br, deflate, zstd) before they are read, so the
        // body limit counts decompressed bytes: a compression bomb costs no more than the limit.
        // An encoding it does not know passes through, for the handler to answer 415.
        let transcode = tower::ServiceBuilder::new()
            .layer(RequestDecompressionLayer::new().pass_through_unaccepted(true))
            .service(handler::transcode_request.with_state(shared));
        let mut router = Router::new().fallback_service(transcode);
        let panel = (!live.is_empty()).then(|| live.panel());
        if let Some(doc) = &doc {
            router = router.merge(openapi::docs_router_with(doc, panel.as_deref()));
        }
        if live_page {
            router = router.merge(live.router(doc.is_some().then_some(openapi::DOCS_PATH)));
        }
        if doc.is_some() || live_page {
            router = router.route_layer(axum::middleware::from_fn(crate::metrics::record_matched));
        }
        Ok(Api {
            router,
            routes,
            sources,
            pool,
            connect,
            loaded: Loaded {
                version,
                at: std::time::SystemTime::now(),
            },
        })
    }
}

/// Why a reload was refused; the served API stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The descriptors could not be read.
    #[error("{0}")]
    Descriptors(#[from] descriptors::DescriptorError),
    /// A configuration file cannot be read, or a rule of it does not fit the descriptors.
    #[error("{0}")]
    Configuration(#[from] ConfigError),
    /// The new descriptors route nothing while the served ones route something: more likely a
    /// backend answering before it registered its services than an API meant to be empty.
    #[error("the descriptors {version} route no method; {served} routes served now are kept")]
    NoRoutes {
        /// The refused version.
        version: DescriptorVersion,
        /// How many routes the served version has.
        served: usize,
    },
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The descriptors were those already served: nothing was rebuilt.
    Unchanged(DescriptorVersion),
    /// The API of other descriptors is served from the next request on.
    Changed {
        /// The version served before.
        from: DescriptorVersion,
        /// The version served now.
        to: DescriptorVersion,
    },
}

/// Builds the API of new descriptors and swaps it in (cheap to clone: clones share it).
#[derive(Debug, Clone)]
pub struct Reloader {
    pub(super) recipe: Arc<Recipe>,
    pub(super) served: ServedApi,
}

impl Reloader {
    /// The served API: its version, when it was loaded, the reload counts.
    pub fn served(&self) -> &ServedApi {
        &self.served
    }

    /// Serves the API of `pool` from the next request on, unless it is the served one;
    /// requests in progress finish on the version they started with. Counted in `/metrics`.
    ///
    /// The configuration files are read again with them: what is served is one version of
    /// both.
    ///
    /// # Errors
    /// [`ReloadError::NoRoutes`] when `pool` routes nothing and the served API routes
    /// something; [`ReloadError::Configuration`] when a configuration file cannot be read or
    /// does not fit `pool`. The served API stays.
    pub fn reload(&self, pool: DescriptorPool) -> Result<Reloaded, ReloadError> {
        let current = self.served.current();
        let built = self.recipe.mapping.load().and_then(|mapping| {
            let version = DescriptorVersion::of(&pool).with_config(&mapping.config);
            if version == current.loaded.version {
                return Ok(Err(version));
            }
            self.recipe
                .api(pool, &mapping, version.clone())
                .map(|api| Ok((api, version)))
        });
        let (api, version) = match built {
            Ok(Ok(built)) => built,
            Ok(Err(version)) => {
                self.served.count(Outcome::Unchanged);
                return Ok(Reloaded::Unchanged(version));
            }
            Err(e) => {
                self.served.count(Outcome::Failed);
                return Err(e.into());
            }
        };
        if api.routes == 0 && current.routes > 0 {
            self.served.count(Outcome::Failed);
            return Err(ReloadError::NoRoutes {
                version,
                served: current.routes,
            });
        }
        // A concurrent reload of the same descriptors would only swap in an equal version:
        // the last one wins, both are the same API.
        self.served.swap(api);
        self.served.count(Outcome::Changed);
        tracing::info!(from = %current.loaded.version, to = %version, "descriptors reloaded");
        Ok(Reloaded::Changed {
            from: current.loaded.version.clone(),
            to: version,
        })
    }
}

/// An `info` for an API known only by its descriptors: titled after its routed services.
pub fn generic_info(bindings: &Bindings) -> ApiInfo {
    let mut services: Vec<&str> = bindings
        .bindings
        .iter()
        .map(|b| b.method.parent_service().full_name())
        .collect();
    services.dedup();
    ApiInfo {
        title: if services.is_empty() {
            "API".to_owned()
        } else {
            services.join(", ")
        },
        version: "unversioned".to_owned(),
        ..ApiInfo::default()
    }
}
