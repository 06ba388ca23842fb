//! The Connect protocol (<https://connectrpc.com/docs/protocol>) on the gateway's one port:
//! a Connect call becomes a gRPC call on the backend, for every method of the served
//! descriptors, so a browser or a Connect client (connect-web, connect-node, connect-go, ...)
//! needs no proxy of its own and no second address.
//!
//! Why the gateway speaks it rather than passing it through like gRPC: a backend serves gRPC
//! (tonic, grpc-go, grpcio, ...), and Connect's unary calls and GET requests are plain HTTP that
//! caches, `curl` and browsers read (JSON bodies, real HTTP statuses, no trailers), which gRPC-Web
//! is not. The call then goes through what every other call goes through here: the backend's
//! balancing and replica health ([`crate::backend`]), the budgets ([`crate::admission`]), the
//! deadlines, the body and message limits, the metrics, request ids, CORS and access logs.
//!
//! **How a request is told to be Connect** (decided once, before REST routing, by
//! [`crate::grpc_proxy`]'s dispatch: [`Kind::of`] from the head, then [`Procedures::decide`]
//! by the served API version):
//! - its path is `/{package.Service}/{Method}`, and
//!   - it is a `POST` with `Content-Type: application/connect+<codec>` (a stream), or
//!   - a `POST` with `application/json` or `application/proto` (unary), or
//!   - a `GET` whose query has `connect=v1` (a unary call without side effects);
//! - and no REST route of the served API matches the same path and HTTP method (REST keeps
//!   every path it has);
//! - and the descriptors serve that method. A path naming no served method is Connect's
//!   `unimplemented` (HTTP 404, what Connect routers answer for an unknown procedure) when
//!   the request says it is Connect (a streaming content type, `Connect-Protocol-Version`, or
//!   `connect=v1`); a plain `POST application/json` without `Connect-Protocol-Version` is then
//!   left to REST, whose 404 it gets.
//!
//! Requests are not checked against the `buf.validate` rules, as for gRPC: the backend checks
//! them (a REST call's are checked at the gateway because REST has no other place to be told).
//! [`procedures`] tells the requests apart and holds what a call needs; [`unary`] serves POST
//! and GET, [`stream`] the streams; [`reply`] writes the errors, [`codec`] the messages and
//! their compression, [`envelope`] the stream framing.

mod codec;
mod envelope;
mod procedures;
mod reply;
mod stream;
mod unary;

pub(crate) use procedures::{Call, Decision, Kind, Limits, Procedures};

use axum::{Router, extract::Request, response::Response};
use tower_http::decompression::RequestDecompressionLayer;

use self::reply::Failure;
use crate::{buffers::ResponseBudget, error::Error};

/// The Connect handler as a router, behind the layers a REST answer goes through too: request
/// decompression (a unary body may be compressed; the body limit then counts decompressed
/// bytes, and an encoding it does not know passes, for the handler to refuse) and the
/// response buffer budget ([`crate::buffers`]). Built once, for every version: the request
/// carries its version's [`Call`] ([`Call::attach`]).
pub(crate) fn router(budget: ResponseBudget) -> Router {
    Router::new()
        .fallback(handle)
        .layer(RequestDecompressionLayer::new().pass_through_unaccepted(true))
        .layer(axum::middleware::from_fn_with_state(
            budget,
            crate::buffers::account,
        ))
}

/// A request for a procedure the served descriptors do not have, answered without a call
/// (once its body is read: [`Procedures::drain`]).
pub(crate) async fn unknown_procedure(
    procedures: Procedures,
    request: Request,
    kind: Kind,
) -> Response {
    let failure = Failure::unknown_procedure(request.uri().path());
    procedures.drain(request).await;
    failure.unary_response(kind == Kind::Get)
}

/// The Connect handler, behind the layers of [`router`].
async fn handle(request: Request) -> Response {
    let Some(call) = request.extensions().get::<Call>().cloned() else {
        // Only dispatch routes here, with the call attached.
        return Failure::from(Error::Internal(
            "a Connect request without its call".to_owned(),
        ))
        .unary_response(false);
    };
    match call.kind {
        Kind::Unary => unary::post(call, request).await,
        Kind::Get => unary::get(call, request).await,
        Kind::Stream => stream::serve(call, request).await,
    }
}
