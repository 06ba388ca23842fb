//! Browsable API docs: the OpenAPI document at `/openapi.json` and Swagger UI at `/docs`.
//!
//! Swagger UI is embedded in the binary (utoipa-swagger-ui's `vendored` feature), so the page
//! works offline and loads nothing from a CDN. The UI is pointed at `/openapi.json` through its
//! config instead of registering the document with `SwaggerUi::url`, so the document is served
//! once, as the exact bytes [`to_pretty_json`] writes (the committed file's bytes).
//!
//! [`docs_router_with`] also puts a fragment of HTML (the gateway's live stream panel,
//! `crate::live`) at the top of Swagger UI's `index.html`. Swagger UI's files are served here
//! through `utoipa_swagger_ui::serve` (the crate's API for frameworks it does not wrap) rather
//! than its axum router, whose `index.html` cannot be changed.

use std::sync::Arc;

use axum::{
    Router,
    extract::Path,
    http::{
        StatusCode,
        header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE},
    },
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use bytes::Bytes;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::Config;

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
    docs_router_with(spec, None)
}

/// [`docs_router`], with `panel` (an HTML fragment) at the top of the Swagger UI page.
pub fn docs_router_with<S>(spec: &OpenApi, panel: Option<&str>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let json = Bytes::from(to_pretty_json(spec));
    let config = Arc::new(
        Config::new([OPENAPI_PATH])
            // Requests go straight to the gateway: no need to click "Try it out" first.
            .try_it_out_enabled(true)
            // Keep the bearer token across reloads while exploring write operations.
            .persist_authorization(true)
            .display_operation_id(true)
            .display_request_duration(true)
            // The default validator badge calls validator.swagger.io: no outside requests.
            .validator_url("none"),
    );
    let index = Bytes::from(index_html(&config, panel));
    let index_route = {
        let index = index.clone();
        get(move || {
            let index = index.clone();
            async move { html(index) }
        })
    };
    let file_route = get(move |Path(file): Path<String>| {
        let (config, index) = (Arc::clone(&config), index.clone());
        async move {
            if file == "index.html" {
                return html(index);
            }
            match utoipa_swagger_ui::serve(&file, config) {
                Ok(Some(found)) => {
                    let mut response = (
                        [(CONTENT_TYPE, found.content_type)],
                        Bytes::from(found.bytes.into_owned()),
                    )
                        .into_response();
                    if found.gzpipped {
                        response
                            .headers_mut()
                            .insert(CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
                    }
                    response
                }
                Ok(None) => StatusCode::NOT_FOUND.into_response(),
                Err(e) => {
                    tracing::error!(error = %e, file, "swagger ui file");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    });
    let slash = format!("{DOCS_PATH}/");
    Router::new()
        .route(
            DOCS_PATH,
            get(move || {
                let slash = slash.clone();
                async move { Redirect::to(&slash) }
            }),
        )
        .route(&format!("{DOCS_PATH}/"), index_route)
        .route(&format!("{DOCS_PATH}/{{*file}}"), file_route)
        .route(
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

/// Swagger UI's `index.html`, `panel` put first in its body.
fn index_html(config: &Arc<Config<'static>>, panel: Option<&str>) -> String {
    let index = match utoipa_swagger_ui::serve("index.html", Arc::clone(config)) {
        Ok(Some(file)) => String::from_utf8_lossy(&file.bytes).into_owned(),
        // The vendored distribution has an index.html; without one the page is only the panel.
        _ => String::from("<!doctype html><body></body>"),
    };
    match panel {
        Some(panel) => index.replacen("<body>", &format!("<body>\n{panel}"), 1),
        None => index,
    }
}

fn html(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}
