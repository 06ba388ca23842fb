//! One port for REST, gRPC and gRPC-Web: native gRPC calls that reach the gateway's listener
//! are forwarded as they are to the backend, and gRPC-Web calls are translated to gRPC first.
//!
//! Why the gateway proxies gRPC at all: a client that speaks gRPC (a generated client,
//! grpcurl, a browser through gRPC-Web) then needs no second address or firewall rule, and
//! its calls get what REST calls get from the gateway: the balancing over the replicas,
//! their health, the request limits, the deadlines, the metrics and the request ids.
//!
//! Which protocol a request speaks is decided once, by its content type, before the REST
//! router ([`dispatch`]): `application/grpc` and `application/grpc+<codec>` are gRPC, the
//! four gRPC-Web types are gRPC-Web (translated by `tonic-web`, over HTTP/1.1 as well as
//! HTTP/2), anything else is REST and never sees this module.
//!
//! A proxied call is not decoded: its path, metadata, length-prefixed messages and trailers
//! pass through unchanged (so any codec, compression and `grpc-status-details-bin` reach the
//! other side as sent), over the backend's own transport ([`Backend::grpc_service`]: the
//! same connections, replica choice and health as transcoded calls; no second pool; a method
//! that streams, or that the descriptors do not name, goes over the connections for streams,
//! [`StreamingCall`]). What the gateway adds:
//! - hop-by-hop headers (`Connection`, `Host`, ...) are dropped, which HTTP/2 forbids, and the
//!   client's address is appended to `X-Forwarded-For`, as for a transcoded call;
//! - the deadline is `grpc-timeout`, else `--timeout` for a unary method and
//!   `--stream-timeout` for a streaming one (or one the descriptors do not name), fixed when
//!   the call arrives, as for REST; the backend is told the time left, and past the deadline
//!   the gateway ends the call itself with DEADLINE_EXCEEDED and resets the backend's stream
//!   ([`body`]);
//! - a unary call takes a slot of `--concurrency-limit`, a streaming call (or one the
//!   descriptors do not name) a slot of `--stream-limit`, from the budgets REST calls take
//!   theirs from ([`crate::admission`]: gRPC streams cannot starve unary calls, REST or gRPC);
//!   one over its budget is answered UNAVAILABLE at once, naming the budget;
//! - metadata over `--max-metadata-bytes` (as HTTP/2 counts a header list) is refused before
//!   the backend sees it, instead of failing there with an answer that is no gRPC status;
//! - an HTTP/1.1 request's body (gRPC-Web from a browser: unary or server-streaming) is read
//!   whole first, up to `--body-limit` ([`read_whole`] says why); over HTTP/2 every message
//!   goes on as it arrives;
//! - native gRPC over HTTP/1.1 gets its status in HTTP/1.1 trailers, announced in a `Trailer`
//!   header (it must say `TE: trailers`; without, it is refused: [`dispatch`]), and a backend
//!   answer that ends without a status gets INTERNAL ([`body`]): every call ends with a status.
//!
//! Errors raised before a backend answers are gRPC answers (HTTP 200, trailers-only, with
//! `grpc-status` and `grpc-message`), with the code [`crate::error`]'s table gives the same
//! failure over REST ([`reply`]). A client that resets its stream resets the backend's: the
//! response body is dropped, and with it the backend stream.
//!
//! Metrics: a proxied call is one HTTP request in `articles_gateway_http_requests_total`,
//! its `route` label the gRPC path (`/package.Service/Method`) when the descriptors, health or
//! reflection name the method, else `unmatched` (so the label's cardinality stays bounded).

mod body;
mod dispatch;
mod reply;

pub(crate) use dispatch::Dispatch;
pub(crate) use reply::error_response;

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Uri, header, uri::PathAndQuery};
use tonic::{body::Body, metadata::MetadataMap};
use tower::ServiceExt as _;

use crate::{
    admission::{Admission, Budget},
    backend::{Backend, CallOptions, GrpcService, StreamingCall},
    error::Error,
    metadata,
    metrics::RouteSlot,
    served::ServedApi,
};

/// The protocol a request speaks, by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `application/grpc`, `application/grpc+proto`, `application/grpc+json`, ...
    Grpc,
    /// One of the four gRPC-Web types `tonic-web` translates.
    GrpcWeb,
    /// Another `application/grpc-web…` type (such as `+json`): refused as gRPC.
    UnsupportedGrpcWeb,
    /// Anything else: the REST router's.
    Rest,
}

impl Protocol {
    /// The protocol of a request with these headers.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(header::CONTENT_TYPE) else {
            return Self::Rest;
        };
        let value = value.as_bytes();
        // `tonic-web` takes exactly these four (no parameters, lower case).
        if matches!(
            value,
            b"application/grpc-web"
                | b"application/grpc-web+proto"
                | b"application/grpc-web-text"
                | b"application/grpc-web-text+proto"
        ) {
            return Self::GrpcWeb;
        }
        let essence = value
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let Some(rest) = strip_prefix_ignore_case(essence, b"application/grpc") else {
            return Self::Rest;
        };
        match rest.first() {
            None | Some(b'+') => Self::Grpc,
            Some(b'-') if strip_prefix_ignore_case(rest, b"-web").is_some() => {
                Self::UnsupportedGrpcWeb
            }
            // `application/grpcfoo`: not gRPC.
            Some(_) => Self::Rest,
        }
    }

    /// Whether the request is gRPC or gRPC-Web (answered in gRPC's shape).
    pub(crate) fn is_grpc(self) -> bool {
        self != Self::Rest
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// What the proxy needs, built once with the router.
#[derive(Debug, Clone)]
pub(crate) struct ProxyOptions {
    /// The served API, whose descriptors say whether a method streams (its default deadline)
    /// and give its metrics label; a reload changes them.
    pub(crate) served: ServedApi,
    pub(crate) timeout: Duration,
    pub(crate) stream_timeout: Duration,
    /// The budgets, shared with REST.
    pub(crate) admission: Admission,
    pub(crate) max_metadata_bytes: usize,
    /// The largest request body read whole (HTTP/1.1 requests only, see [`read_whole`]).
    pub(crate) body_limit: usize,
}

/// The gRPC proxy, as a tower service over tonic bodies (what `tonic-web` wraps).
#[derive(Clone)]
pub(crate) struct Proxy {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

struct Shared {
    service: GrpcService,
    /// Each proxied call holds its slot (in `options.admission`) until its response body is
    /// done.
    options: ProxyOptions,
}

/// Services every proxied call may reach beside the API's own: health and reflection.
const KNOWN_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

impl Proxy {
    pub(crate) fn new(backend: &Backend, options: ProxyOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                service: backend.grpc_service(),
                options,
            }),
        }
    }
}

/// What the descriptors say of the method at `path`: whether it is known (its path is then a
/// bounded metrics label) and whether it streams.
#[derive(Debug, Clone, Copy)]
struct MethodKind {
    known: bool,
    streaming: bool,
}

impl Shared {
    fn method_kind(&self, path: &str) -> MethodKind {
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return MethodKind {
                known: false,
                streaming: true,
            };
        };
        let api = self.options.served.current();
        if let Some(found) = api
            .pool
            .get_service_by_name(service)
            .and_then(|s| s.methods().find(|m| m.name() == method))
        {
            return MethodKind {
                known: true,
                streaming: found.is_client_streaming() || found.is_server_streaming(),
            };
        }
        MethodKind {
            known: KNOWN_SERVICES.contains(&service),
            // Health's Watch and reflection stream; an unknown method may: the longer deadline.
            streaming: !path.ends_with("/Check"),
        }
    }

    /// Forwards one call; every failure is a gRPC answer.
    async fn forward(self: Arc<Self>, request: http::Request<Body>) -> http::Response<Body> {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let kind = self.method_kind(path.path());
        if kind.known {
            RouteSlot::record(&parts.extensions, path.path());
        }
        let timeout = match metadata::grpc_timeout(&parts.headers) {
            Ok(timeout) => timeout,
            Err(e) => return reply::error(&Error::InvalidArgument(e.to_string())),
        };
        // Fixed once, here, as for a transcoded call (a huge `grpc-timeout` is as good as none).
        let deadline = CallOptions::within(timeout.unwrap_or(if kind.streaming {
            self.options.stream_timeout
        } else {
            self.options.timeout
        }))
        .deadline;
        let budget = if kind.streaming {
            Budget::Stream
        } else {
            Budget::Unary
        };
        let permit = match self.options.admission.admit(budget) {
            Ok(permit) => permit,
            Err(error) => return reply::error(&error),
        };
        let client = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0);
        let forwarded_for = metadata::forwarded_for(&parts.headers, client);
        let headers = MetadataMap::from_headers(std::mem::take(&mut parts.headers));
        if metadata::list_size(&headers) > self.options.max_metadata_bytes {
            return reply::error(&Error::MetadataTooLarge {
                limit: self.options.max_metadata_bytes,
            });
        }
        parts.headers = forwarded_headers(headers.into_headers());
        if let Some(value) = forwarded_for {
            parts
                .headers
                .insert(http::HeaderName::from_static("x-forwarded-for"), value);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return reply::error(&Error::DeadlineExceeded);
        }
        parts
            .headers
            .insert(metadata::GRPC_TIMEOUT, metadata::encode_grpc_timeout(left));
        parts.uri = Uri::from(path);
        if kind.streaming {
            // Over the backend's connections for streams: a long-lived call must not hold the
            // stream slots unary calls need.
            parts.extensions.insert(StreamingCall);
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        let body = if parts.version < http::Version::HTTP_2 {
            match read_whole(body, self.options.body_limit, deadline).await {
                Ok(body) => body,
                Err(error) => return reply::error(&error),
            }
        } else {
            body
        };
        let call = self
            .service
            .clone()
            .oneshot(http::Request::from_parts(parts, body));
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(mut response)) => {
                // The body goes on frame by frame, and gRPC-Web rewrites it (trailers become a
                // frame, -text is base64): a length the backend announced would cut it short.
                response.headers_mut().remove(header::CONTENT_LENGTH);
                let status_in_head = response.headers().contains_key("grpc-status");
                response.map(|b| Body::new(body::Proxied::new(b, deadline, permit, status_in_head)))
            }
            // A transport failure, already a status with a message that names no address.
            Ok(Err(status)) => status.into_http(),
            Err(_) => reply::error(&Error::DeadlineExceeded),
        }
    }
}

/// An HTTP/1.1 request's body, read whole (at most `limit` bytes, by the deadline).
///
/// HTTP/1.1 cannot stream both ways (a gRPC-Web call over it is unary or server-streaming),
/// so nothing is lost by reading first; and it keeps the connection usable: a backend may end
/// its answer before the request's last bytes arrive (a server stream that fails at once),
/// and then resets its stream, the rest of the body is left unread, and hyper closes the
/// connection under a client still writing it (which reports EPIPE rather than the status).
async fn read_whole(
    body: Body,
    limit: usize,
    deadline: tokio::time::Instant,
) -> Result<Body, Error> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout_at(deadline, http_body_util::BodyExt::collect(limited)).await {
        Err(_) => Err(Error::DeadlineExceeded),
        Ok(Ok(collected)) => Ok(Body::new(http_body_util::Full::new(collected.to_bytes()))),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(Error::PayloadTooLarge { limit })
        }
        Ok(Err(error)) => Err(Error::InvalidArgument(format!(
            "the request body could not be read: {error}"
        ))),
    }
}

/// The request headers as HTTP/2 forwards them: without the hop-by-hop ones (HTTP/2 forbids
/// them; `Host` becomes the backend's `:authority`), nor those an HTTP/1.1 request's
/// `Connection` names as its own hop's (RFC 9110 section 7.6.1), and with `TE: trailers`,
/// which gRPC requires and an HTTP/1.1 gRPC-Web request may not carry.
fn forwarded_headers(mut headers: HeaderMap) -> HeaderMap {
    let named: Vec<header::HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| header::HeaderName::from_bytes(name.trim().as_bytes()).ok())
        // The call's own content type is never the hop's, whatever `Connection` says.
        .filter(|name| *name != header::CONTENT_TYPE)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::HOST,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::CONTENT_LENGTH,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    headers
}

impl tower::Service<http::Request<Body>> for Proxy {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness is the backend's, awaited within the call (and its deadline).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Ok(shared.forward(request).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(content_type: &'static str) -> Protocol {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        Protocol::of(&headers)
    }

    #[test]
    fn the_content_type_alone_picks_the_protocol() {
        assert_eq!(of("application/grpc"), Protocol::Grpc);
        assert_eq!(of("application/grpc+proto"), Protocol::Grpc);
        assert_eq!(of("Application/GRPC+json; charset=utf-8"), Protocol::Grpc);
        assert_eq!(of("application/grpc-web"), Protocol::GrpcWeb);
        assert_eq!(of("application/grpc-web+proto"), Protocol::GrpcWeb);
        assert_eq!(of("application/grpc-web-text"), Protocol::GrpcWeb);
        assert_eq!(of("application/grpc-web-text+proto"), Protocol::GrpcWeb);
        assert_eq!(
            of("application/grpc-web+json"),
            Protocol::UnsupportedGrpcWeb
        );
        assert_eq!(of("application/grpcfoo"), Protocol::Rest);
        assert_eq!(of("application/json"), Protocol::Rest);
        assert_eq!(Protocol::of(&HeaderMap::new()), Protocol::Rest);
    }
}
