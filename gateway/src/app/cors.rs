//! CORS: which browser origins may call the API, as one tower-http [`CorsLayer`] around the
//! whole router (the gateway's own paths, proxied gRPC-Web calls and Connect calls included).

use std::time::Duration;

use http::{HeaderName, HeaderValue, header};
use tower_http::cors::{AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::metadata;

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, Default)]
pub enum CorsOrigins {
    /// Any origin, without credentials (`Access-Control-Allow-Origin: *`): the API is
    /// authenticated with bearer tokens, not cookies, so a wildcard exposes nothing a script
    /// could not already do with its own token.
    #[default]
    Any,
    /// Only these origins.
    List(Vec<HeaderValue>),
}

/// The layer that answers preflights and adds the CORS headers for `origins`.
pub(crate) fn layer(origins: &CorsOrigins) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(metadata::GRPC_TIMEOUT),
            HeaderName::from_static("x-request-id"),
            // What gRPC-Web clients send (grpc-web, Connect's gRPC-Web transport).
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            // What Connect clients send (connect-web's Connect transport).
            HeaderName::from_static("connect-protocol-version"),
            HeaderName::from_static("connect-timeout-ms"),
            HeaderName::from_static("connect-content-encoding"),
            HeaderName::from_static("connect-accept-encoding"),
            header::CONTENT_ENCODING,
            // Conditional requests and partial responses (`crate::conditional`,
            // `transcode::fields`): none is CORS-safelisted.
            header::IF_NONE_MATCH,
            header::IF_MATCH,
            HeaderName::from_static("x-goog-fieldmask"),
        ])
        // `Grpc-Metadata-*` cannot be listed by prefix; without credentials `*` exposes all,
        // gRPC-Web's `grpc-status` and `grpc-message` (trailers-only answers) included.
        .expose_headers(ExposeHeaders::any())
        .max_age(Duration::from_secs(600));
    match origins {
        CorsOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        CorsOrigins::List(list) => layer.allow_origin(AllowOrigin::list(list.iter().cloned())),
    }
}
