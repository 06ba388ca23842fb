//! The live page at `/`: the API's server-streaming routes, and the events of a chosen one as
//! they arrive, in the browser, over Server-Sent Events (which the gateway answers to `Accept:
//! text/event-stream`): a `GET` route through `EventSource`, which reconnects by itself; a
//! `POST` route whose body is the whole request (every auto-mapped stream) through `fetch`,
//! its body written in the form as JSON, since `EventSource` only ever sends a `GET`.
//!
//! Nothing names an API: the routes come from the [`Bindings`], so the page shows the article
//! feed for the article API and a sensor's readings for a sensor API. A route whose request
//! message follows the resume convention (`stream::resume`) is marked resumable: the browser's
//! `EventSource` reconnects with the `id:` of the last event as `Last-Event-ID`, so a reconnect
//! loses nothing. The page opens the first resumable route without path variables at once.
//!
//! The page's own query says what to watch: `?watch=/a/concrete/path` picks the stream, and
//! every other parameter is passed on to it (`/?last_event_id=10` starts the article feed after
//! event 10: that is how `articles-service serve --rest` opens it a few events back).
//!
//! One HTML file with its script and style inline, nothing fetched from elsewhere (no CDN),
//! hand-written because it is small and must work offline. The same widget
//! ([`LiveRoutes::panel`]) is also put on the Swagger UI page, closed until it is opened. The
//! page is served only when the API has such a route and no annotated route matches `/` (the
//! API's own `/` wins, unlike the gateway's other paths: this page is a convenience, the API's
//! route is its contract).

use axum::{
    Router,
    http::header::{CACHE_CONTROL, CONTENT_TYPE},
    routing::get,
};
use prost_reflect::Kind;
use serde::Serialize;

use crate::{
    probes,
    routes::RouteTable,
    rules::{Binding, Bindings, BodyRule},
    stream::follows_resume_convention,
    template::split_request_path,
    transcode::http_body,
};

/// Where the page is served.
pub const LIVE_PATH: &str = "/";

const PAGE: &str = include_str!("live/page.html");
const PANEL: &str = include_str!("live/panel.html");
const SCRIPT: &str = include_str!("live/live.js");
const STYLE: &str = include_str!("live/live.css");

/// One server-streaming route, as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveRoute {
    /// `GET`, or `POST` for a route whose body is the whole request.
    pub http_method: String,
    /// The template as OpenAPI writes it (`/v1/sensors/{sensor}/events`).
    pub path: String,
    /// The gRPC method's full name.
    pub method: String,
    /// The template's variables, as written between braces in [`LiveRoute::path`].
    pub variables: Vec<String>,
    /// The request fields that can be given as query parameters (for a `POST`, the scalar
    /// fields of the JSON body).
    pub query: Vec<String>,
    /// Whether `Last-Event-ID` resumes it (its request has `last_event_id`).
    pub resumable: bool,
}

/// The routes the live page offers.
#[derive(Debug, Clone, Default)]
pub struct LiveRoutes {
    routes: Vec<LiveRoute>,
}

impl LiveRoutes {
    /// The server-streaming routes of `bindings` whose messages are JSON (a stream of
    /// `HttpBody`, or of `HttpBody` fields, is a download, not events): every `GET`, and each
    /// `POST` whose body is the whole request.
    pub fn from_bindings(bindings: &Bindings) -> Self {
        let routes = bindings
            .bindings
            .iter()
            .filter(|b| is_event_stream(b))
            .map(|b| {
                let variables: Vec<String> =
                    b.template.variables().iter().map(|v| v.dotted()).collect();
                let input = b.method.input();
                let query = input
                    .fields()
                    .filter(|f| {
                        !variables
                            .iter()
                            .any(|v| v.split('.').next() == Some(f.name()))
                    })
                    .filter(|f| {
                        !f.is_list() && !f.is_map() && !matches!(f.kind(), Kind::Message(_))
                    })
                    .map(|f| f.name().to_owned())
                    .collect();
                LiveRoute {
                    http_method: b.http_method.to_string(),
                    path: b.template.openapi_path(),
                    method: b.method.full_name().to_owned(),
                    variables,
                    query,
                    resumable: follows_resume_convention(b),
                }
            })
            .collect();
        Self { routes }
    }

    /// The routes, in service and method order.
    pub fn routes(&self) -> &[LiveRoute] {
        &self.routes
    }

    /// Whether there is nothing to watch.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The widget alone (its markup, style, route list and script), for another page to
    /// include in its `<body>`: a closed `<details>` that starts watching when it is opened
    /// (on the API docs page, a stream is not opened for every reader).
    pub fn panel(&self) -> String {
        self.widget(false)
    }

    fn widget(&self, open: bool) -> String {
        // `<` escaped so that no string in the list can close the script element.
        let routes = serde_json::to_string(&self.routes)
            .unwrap_or_else(|_| "[]".to_owned())
            .replace('<', "\\u003c");
        PANEL
            .replace("__OPEN__", if open { " open" } else { "" })
            .replace("__STYLE__", STYLE)
            .replace("__ROUTES__", &routes)
            .replace("__SCRIPT__", SCRIPT)
    }

    /// The whole page, linking to the API docs at `docs` when they are served.
    pub fn page(&self, docs: Option<&str>) -> String {
        let docs = docs.map_or_else(String::new, |href| {
            format!(r#" <a href="{href}">API docs</a>."#)
        });
        PAGE.replace("__DOCS__", &docs)
            .replace("__PANEL__", &self.widget(true))
    }

    /// A router serving [`LiveRoutes::page`] at [`LIVE_PATH`].
    pub fn router<S>(&self, docs: Option<&str>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let html = bytes::Bytes::from(self.page(docs));
        let page = get(move || {
            let html = html.clone();
            async move {
                (
                    [
                        (CONTENT_TYPE, "text/html; charset=utf-8"),
                        (CACHE_CONTROL, "no-cache"),
                    ],
                    html,
                )
            }
        });
        Router::new().route(LIVE_PATH, page.fallback(probes::get_only))
    }
}

/// Whether `binding` streams JSON messages to a `GET`.
fn is_event_stream(binding: &Binding) -> bool {
    let method = &binding.http_method;
    (method == http::Method::GET
        || (method == http::Method::POST && matches!(binding.body, BodyRule::Whole)))
        && binding.method.is_server_streaming()
        && !binding.method.is_client_streaming()
        && http_body::raw_response(binding).is_none()
}

/// Whether an annotated route (of any HTTP method) matches [`LIVE_PATH`], which then is the
/// API's, not the page's.
pub(crate) fn claimed_by_api(table: &RouteTable) -> bool {
    let (segments, _) = split_request_path(LIVE_PATH, |_| false);
    table.routes().iter().any(|route| {
        let claimed = route.binding.template.is_match(&segments, None);
        if claimed {
            tracing::info!(
                route = %format_args!("{} {}", route.binding.http_method, route.binding.template),
                "the API routes /: no live page there"
            );
        }
        claimed
    })
}
