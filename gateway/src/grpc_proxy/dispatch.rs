//! The one decision per request: gRPC, gRPC-Web or REST, by content type, before any REST
//! routing (so no REST route, fallback or layer inside the router sees a gRPC call).

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
use crate::error::Error;

/// Sends gRPC to the [`Proxy`], gRPC-Web to it through `tonic-web`, and the rest to `rest`.
#[derive(Debug, Clone)]
pub(crate) struct Dispatch {
    rest: Router,
    grpc: Proxy,
    grpc_web: GrpcWebService<Proxy>,
}

impl Dispatch {
    pub(crate) fn new(rest: Router, grpc: Proxy) -> Self {
        let grpc_web = tonic_web::GrpcWebLayer::new().layer(grpc.clone());
        Self {
            rest,
            grpc,
            grpc_web,
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
        match Protocol::of(request.headers()) {
            // axum's router is always ready: no `poll_ready` is owed before its `call`.
            Protocol::Rest => Either::Left(self.rest.call(request)),
            Protocol::Grpc => {
                let grpc = self.grpc.clone();
                Either::Right(Box::pin(async move {
                    let response = grpc.oneshot(request.map(tonic::body::Body::new)).await?;
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
