//! The live feed at `/` of the in-process REST gateway: the gateway's own live page
//! (`articles_gateway::live`, which shows any API's server-streaming routes through
//! `EventSource`) opened on `GET /articles:watch` a few events back.
//!
//! The gateway cannot know where "a few events back" is for an API it knows only by its
//! descriptors, so this layer sends a bare `GET /` to `/?last_event_id=N`, [`BACKLOG`] events
//! before the newest: the page passes its query on to the stream, which then opens with recent
//! changes instead of replaying the whole event table. On a database without events (a Django
//! one) it starts from 0, and the page says why watching is unavailable.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

use crate::store::Store;

/// How many past events the page shows when it opens.
pub const BACKLOG: i64 = 20;

/// Middleware for the gateway's router: a `GET /` with no query goes to the live page with
/// the stream's start in its query; everything else passes through.
pub async fn backlog(State(store): State<Store>, request: Request, next: Next) -> Response {
    let uri = request.uri();
    if request.method() != http::Method::GET || uri.path() != "/" || uri.query().is_some() {
        return next.run(request).await;
    }
    // A database error only makes the page start from the first event.
    let start = store
        .latest_event_id()
        .await
        .map_or(0, |latest| (latest - BACKLOG).max(0));
    Redirect::to(&format!("/?last_event_id={start}")).into_response()
}
