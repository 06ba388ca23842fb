//! The live feed page at `/` of the in-process REST gateway: the article events of
//! `GET /articles:watch` shown through the browser's `EventSource`, in one HTML file with its
//! script inline (no CDN, nothing else to fetch).
//!
//! The page starts [`BACKLOG`] events back from the newest, so it opens with recent changes
//! instead of replaying the whole event table; on a database without events (a Django one) it
//! still loads, and says that watching is unavailable.

use axum::{extract::State, response::Html, routing::get};

use crate::store::Store;

/// How many past events the page shows when it opens.
pub const BACKLOG: i64 = 20;

const PAGE: &str = include_str!("feed/page.html");

/// The router serving the page.
pub fn router(store: Store) -> axum::Router {
    axum::Router::new().route("/", get(page)).with_state(store)
}

async fn page(State(store): State<Store>) -> Html<String> {
    // A database error only makes the page start from the first event.
    let start = store
        .latest_event_id()
        .await
        .map_or(0, |latest| (latest - BACKLOG).max(0));
    Html(PAGE.replace("__START__", &start.to_string()))
}
