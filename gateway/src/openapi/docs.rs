//! Browsable API docs: the OpenAPI document at `/openapi.json` and Swagger UI at `/docs`.
//!
//! Swagger UI is embedded in the binary (utoipa-swagger-ui's `vendored` feature), so the page
//! works offline and loads nothing from a CDN. The UI is pointed at `/openapi.json` through its
//! config instead of registering the document with `SwaggerUi::url`, so the document is served
//! once, as the exact bytes [`to_pretty_json`] writes (the committed file's bytes).

use axum::{
    Router,
    http::header::{CACHE_CONTROL, CONTENT_TYPE},
    routing::get,
};
use bytes::Bytes;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::to_pretty_json;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Where Swagger UI is served (`/docs` redirects to `/docs/`, whose relative asset URLs work).
pub const DOCS_PATH: &str = "/docs";

/// A router serving `spec` at [`OPENAPI_PATH`] and Swagger UI at [`DOCS_PATH`].
///
/// Generic over the state so it can be merged into the gateway's router whatever its state.
pub fn docs_router<S>(spec: &OpenApi) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let json = Bytes::from(to_pretty_json(spec));
    let config = Config::new([OPENAPI_PATH])
        // Requests go straight to the gateway: no need to click "Try it out" first.
        .try_it_out_enabled(true)
        // Keep the bearer token across reloads while exploring write operations.
        .persist_authorization(true)
        .display_operation_id(true)
        .display_request_duration(true)
        // The default validator badge calls validator.swagger.io: no outside requests.
        .validator_url("none");
    let ui: Router<S> = SwaggerUi::new(DOCS_PATH).config(config).into();
    ui.route(
        OPENAPI_PATH,
        get(move || {
            let json = json.clone();
            async move {
                (
                    [
                        (CONTENT_TYPE, "application/json"),
                        (CACHE_CONTROL, "no-cache"),
                    ],
                    json,
                )
            }
        }),
    )
}
