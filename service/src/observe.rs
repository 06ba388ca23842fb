//! The per-request tower layer of the gRPC server: request id, tracing span and metrics, in one
//! place for every service (articles, legacy alias, health, reflection).
//!
//! For each request [`ObserveLayer`]:
//! - takes the `x-request-id` metadata (the gateway forwards it) when it is a short printable
//!   value, or generates a UUID v4, and returns it as `x-request-id` response metadata;
//! - runs the handler inside a `grpc` span carrying `request_id`, `service` and `method`, so
//!   every log line of the request carries them;
//! - records the call in [`Metrics`] when its response ends: the status code comes from the
//!   response headers (trailers-only errors) or from the trailers; a response dropped before
//!   its end (client gone) counts as `CANCELLED`;
//! - answers a message over the size limit with RESOURCE_EXHAUSTED, as the gRPC status code
//!   document says, where tonic's codec hard-codes OUT_OF_RANGE ([`size_limit_status`]).
//!
//! Label values are bounded: a service we do not serve is labelled `unknown`, and so is the
//! method of an UNIMPLEMENTED call.
//!
//! Hand-written rather than tower-http's `SetRequestId`/`PropagateRequestId` and `TraceLayer`:
//! those would accept any incoming id (this one is taken only when short and printable, as it
//! goes into every log line), and a call's metrics need its gRPC code as a label, including the
//! CANCELLED of a response body dropped before its end, which `TraceLayer`'s callbacks never
//! see. One layer does the three with one wrapper of the response body instead of three.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tonic::Code;
use tower::{Layer, Service};
use tracing::{Instrument as _, Span};

use crate::{error::code_name, metrics::Metrics};

/// The metadata key of the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// The services whose names appear as metric labels.
const KNOWN_SERVICES: &[&str] = &[
    articles_proto::ARTICLE_SERVICE,
    articles_proto::LEGACY_ARTICLE_SERVICE,
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Adds request ids, spans and metrics to a gRPC server (see the module docs).
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    metrics: Metrics,
}

impl ObserveLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Observe<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let request_id = request_id(request.headers());
        request.headers_mut().insert(REQUEST_ID, request_id.clone());
        let (service, method) = split_path(request.uri().path());
        let span = tracing::info_span!(
            "grpc",
            request_id = %String::from_utf8_lossy(request_id.as_bytes()),
            service = %service,
            method = %method,
        );
        let mut observation = Observation {
            metrics: self.metrics.clone(),
            service,
            method,
            start: Instant::now(),
            code: None,
            ended: false,
            span: span.clone(),
        };
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let mut response = future.await?;
                response.headers_mut().insert(REQUEST_ID, request_id);
                size_limit_status(response.headers_mut());
                observation.code = status_code(response.headers());
                Ok(response.map(|inner| ObservedBody {
                    inner,
                    observation: Some(observation),
                }))
            }
            .instrument(span),
        )
    }
}

/// The client's request id when usable, else a new UUID: the gateway's one rule.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    articles_gateway::request_id::request_id(headers)
}

/// `/pkg.Service/Method` as (service, method) labels, `unknown` for services we do not serve.
fn split_path(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    let method_ok = !method.is_empty()
        && method.len() <= 64
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if KNOWN_SERVICES.contains(&service) && method_ok {
        (service.to_owned(), method.to_owned())
    } else {
        ("unknown".to_owned(), "unknown".to_owned())
    }
}

/// The start of tonic's message for a message over the decoding or encoding limit.
const SIZE_LIMIT_MESSAGES: [&str; 2] = [
    "Error, decoded message length too large",
    "Error, encoded message length too large",
];

/// Turns tonic's OUT_OF_RANGE for a message over the size limit into RESOURCE_EXHAUSTED
/// ("request/response larger than the limit" in grpc's `statuscodes.md`): OUT_OF_RANGE tells
/// a client its arguments are wrong, this says the size is. tonic has no setting for the code.
fn size_limit_status(headers: &mut HeaderMap) {
    let over_limit = headers.get("grpc-status").map(HeaderValue::as_bytes) == Some(b"11")
        && headers.get("grpc-message").is_some_and(|m| {
            let message = percent_encoding::percent_decode(m.as_bytes()).decode_utf8_lossy();
            SIZE_LIMIT_MESSAGES.iter().any(|p| message.starts_with(p))
        });
    if over_limit {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
}

fn status_code(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// One call being observed; recorded when dropped.
struct Observation {
    metrics: Metrics,
    service: String,
    method: String,
    start: Instant,
    code: Option<Code>,
    ended: bool,
    span: Span,
}

impl Drop for Observation {
    fn drop(&mut self) {
        let code = match (self.code, self.ended) {
            (Some(code), _) => code,
            (None, true) => Code::Unknown,
            (None, false) => Code::Cancelled,
        };
        if code == Code::Unimplemented {
            "unknown".clone_into(&mut self.method);
        }
        let elapsed = self.start.elapsed();
        self.metrics.record_call(
            &self.service,
            &self.method,
            code_name(code),
            elapsed.as_secs_f64(),
        );
        let _entered = self.span.enter();
        tracing::debug!(
            code = code_name(code),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "call finished"
        );
    }
}

/// A response body that completes its call's [`Observation`] at its end or when dropped.
pub struct ObservedBody<B> {
    inner: B,
    observation: Option<Observation>,
}

impl<B> std::fmt::Debug for ObservedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedBody").finish_non_exhaustive()
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let mut polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &mut polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_mut() {
                    size_limit_status(trailers);
                    if let Some(observation) = this.observation.as_mut() {
                        observation.code = status_code(trailers).or(observation.code);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(observation) = this.observation.as_mut() {
                    observation.code.get_or_insert(Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(mut observation) = this.observation.take() {
                    observation.ended = true;
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_to_served_services() {
        assert_eq!(
            split_path("/article.v1.ArticleService/ArticleList"),
            (
                "article.v1.ArticleService".to_owned(),
                "ArticleList".to_owned()
            )
        );
        assert_eq!(
            split_path("/evil.Service/Anything"),
            ("unknown".to_owned(), "unknown".to_owned())
        );
        assert_eq!(
            split_path("/article.v1.ArticleService/a b"),
            ("unknown".to_owned(), "unknown".to_owned())
        );
    }

    #[test]
    fn request_ids_are_kept_when_printable_and_generated_otherwise() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&headers).len(), 36);
        assert_eq!(request_id(&HeaderMap::new()).len(), 36);
    }
}
