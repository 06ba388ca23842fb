//! The one decision per request: gRPC, gRPC-Web, Connect or REST, by content type (and, for
//! what may be Connect, its path and query: [`crate::connect::Kind`]), before any REST routing
//! (so no REST route, fallback or layer inside the router sees a gRPC call). What may be
//! Connect is decided by the served API version ([`crate::connect::Procedures::decide`]): back
//! to REST when a REST route matches (or the path names no served method and the request does
//! not say it is Connect), else to the Connect handler, with the same version.
//!
//! Native gRPC over HTTP/1.1 (not gRPC-Web: that one carries its status in the body) needs
//! its status sent as HTTP/1.1 chunked trailers. hyper sends them only when the request says
//! `TE: trailers` and the response head announces each field in a `Trailer` header; otherwise
//! it drops them and the body just ends, with no status for the client. So such a call is
//! answered with `Trailer: grpc-status, grpc-message, grpc-status-details-bin` (other
//! trailing metadata needs HTTP/2: it is not known when the head goes), and one without
//! `TE: trailers` (or over HTTP/1.0, which has no trailers) is refused with a trailers-only
//! status saying why.

use std::{
    convert::Infallible,
    task::{Context, Poll},
};

use axum::{
    Router,
    body::Body,
    extract::Request,
    response::{IntoResponse as _, Response},
    routing::future::RouteFuture,
};
use futures::future::{BoxFuture, Either};
use tonic_web::GrpcWebService;
use tower::{Layer as _, ServiceExt as _};

use super::{Protocol, Proxy, reply};
use crate::{connect, error::Error, metrics::RouteSlot, served::ServedApi};

/// The trailers a gRPC call over HTTP/1.1 is announced to end with: the status.
const STATUS_TRAILERS: &str = "grpc-status, grpc-message, grpc-status-details-bin";

/// Whether hyper will send this HTTP/1 request's trailers: HTTP/1.1 with `TE: trailers`, as
/// hyper reads it (a `trailers` token in a comma-separated list, no parameters).
fn http1_can_have_trailers(request: &Request) -> bool {
    request.version() == http::Version::HTTP_11
        && request
            .headers()
            .get_all(http::header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// Sends gRPC to the [`Proxy`], gRPC-Web to it through `tonic-web`, what may be Connect to
/// `connect` (as the served version decides), and the rest to `rest`.
#[derive(Debug, Clone)]
pub(crate) struct Dispatch {
    rest: Router,
    grpc: Proxy,
    grpc_web: GrpcWebService<Proxy>,
    served: ServedApi,
    connect: Router,
}

impl Dispatch {
    pub(crate) fn new(rest: Router, grpc: Proxy, served: ServedApi, connect: Router) -> Self {
        let grpc_web = tonic_web::GrpcWebLayer::new().layer(grpc.clone());
        Self {
            rest,
            grpc,
            grpc_web,
            served,
            connect,
        }
    }

    /// A request that may be Connect: the version served now decides, and answers.
    fn connect(
        &mut self,
        mut request: Request,
        kind: connect::Kind,
    ) -> <Self as tower::Service<Request>>::Future {
        // One load: the decision and the call see the same version.
        let procedures = self.served.current().connect.clone();
        match procedures.decide(&request, kind) {
            // axum's router is always ready: no `poll_ready` is owed before its `call`.
            connect::Decision::Rest => Either::Left(tower::Service::call(&mut self.rest, request)),
            connect::Decision::Unknown(procedures) => {
                RouteSlot::record_protocol(request.extensions(), "connect");
                Either::Right(Box::pin(async move {
                    Ok(connect::unknown_procedure(procedures, request, kind).await)
                }))
            }
            connect::Decision::Call(call) => {
                RouteSlot::record_protocol(request.extensions(), "connect");
                RouteSlot::record(request.extensions(), request.uri().path());
                call.attach(&mut request);
                Either::Left(tower::Service::call(&mut self.connect, request))
            }
        }
    }
}

impl tower::Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    /// REST is the router's own future, unboxed: its requests cost no more than before.
    type Future = Either<RouteFuture<Infallible>, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // All three are always ready (axum's router, and the proxy, which waits in the call).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let protocol = Protocol::of(request.headers());
        let label = match protocol {
            Protocol::Grpc => Some("grpc"),
            Protocol::GrpcWeb | Protocol::UnsupportedGrpcWeb => Some("grpc-web"),
            Protocol::Rest => None,
        };
        if let Some(label) = label {
            RouteSlot::record_protocol(request.extensions(), label);
        }
        match protocol {
            Protocol::Rest => match connect::Kind::of(&request) {
                Some(kind) => self.connect(request, kind),
                // axum's router is always ready: no `poll_ready` is owed before its `call`.
                None => Either::Left(self.rest.call(request)),
            },
            Protocol::Grpc => {
                let grpc = self.grpc.clone();
                let http1 = request.version() < http::Version::HTTP_2;
                if http1 && !http1_can_have_trailers(&request) {
                    let response = reply::error_response(&Error::InvalidArgument(
                        "gRPC over HTTP/1 needs HTTP/1.1 and `TE: trailers` (the status is sent \
                         in trailers); use HTTP/2, or gRPC-Web"
                            .to_owned(),
                    ));
                    return Either::Right(Box::pin(std::future::ready(Ok(response))));
                }
                Either::Right(Box::pin(async move {
                    let mut response = grpc.oneshot(request.map(tonic::body::Body::new)).await?;
                    // A trailers-only answer has its status in the head already.
                    if http1 && !response.headers().contains_key("grpc-status") {
                        response.headers_mut().insert(
                            http::header::TRAILER,
                            http::HeaderValue::from_static(STATUS_TRAILERS),
                        );
                    }
                    Ok(response.map(Body::new))
                }))
            }
            Protocol::GrpcWeb => {
                let grpc_web = self.grpc_web.clone();
                Either::Right(Box::pin(async move {
                    let response = grpc_web.oneshot(request).await?;
                    Ok(response.map(Body::new))
                }))
            }
            Protocol::UnsupportedGrpcWeb => {
                let content_type = request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                let response = reply::error_response(&Error::InvalidArgument(format!(
                    "unsupported gRPC-Web content type {content_type:?}: application/grpc-web, \
                     application/grpc-web+proto, application/grpc-web-text or \
                     application/grpc-web-text+proto"
                )));
                Either::Right(Box::pin(std::future::ready(Ok(response.into_response()))))
            }
        }
    }
}
