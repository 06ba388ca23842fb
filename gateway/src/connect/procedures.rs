//! Which requests are Connect calls, and what a call needs: the request's [`Kind`] from its
//! head, the served version's [`Procedures`] (its methods, its REST routes, which keep their
//! paths, its limits), and the protocol's headers every kind reads (`Connect-Timeout-Ms`,
//! `Connect-Protocol-Version`).

use std::{sync::Arc, time::Duration};

use axum::extract::Request;
use http::{HeaderMap, Method, header};
use prost_reflect::MethodDescriptor;
use tonic::metadata::MetadataMap;

use crate::{
    admission::Admission,
    calls::Calls,
    error::Error,
    metadata,
    routes::{Lookup, RouteTable},
    template::split_request_path,
    transcode,
};

/// The header a Connect client sends with every unary call (`1`).
const PROTOCOL_VERSION: &str = "connect-protocol-version";

/// The kind of Connect request, from its head alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `POST` with `application/json` or `application/proto`.
    Unary,
    /// `GET` with `connect=v1` in the query.
    Get,
    /// `POST` with `application/connect+<codec>`.
    Stream,
}

impl Kind {
    /// What the request may be, before any routing: `None` for anything that cannot be
    /// Connect (the common REST request pays a look at its content type and path).
    pub(crate) fn of(request: &Request) -> Option<Self> {
        let kind = match *request.method() {
            Method::POST => {
                let essence = content_type_essence(request.headers())?;
                let head = essence.get(..20).unwrap_or_default();
                if head.eq_ignore_ascii_case("application/connect+") {
                    Self::Stream
                } else if essence.eq_ignore_ascii_case("application/json")
                    || essence.eq_ignore_ascii_case("application/proto")
                {
                    Self::Unary
                } else {
                    return None;
                }
            }
            Method::GET => {
                let query = request.uri().query()?;
                if !query.split('&').any(|pair| pair == "connect=v1") {
                    return None;
                }
                Self::Get
            }
            _ => return None,
        };
        procedure(request.uri().path()).map(|_| kind)
    }
}

/// The content type's essence, without parameters (as sent: compare it ignoring case). Not
/// copied: every REST `POST` is looked at.
pub(super) fn content_type_essence(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim())
}

/// The service and method a path names, when it has Connect's shape: `/{service}/{method}`,
/// the service a dotted protobuf name, the method an identifier.
fn procedure(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let identifier = |s: &str, dots: bool| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || (dots && b == b'.'))
    };
    (identifier(service, true) && identifier(method, false)).then_some((service, method))
}

/// What one API version's Connect calls need (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Procedures(pub(super) Arc<Shared>);

#[derive(Debug)]
pub(super) struct Shared {
    /// The version's calls: backend, descriptors, JSON options, body and metadata limits.
    pub(super) calls: Arc<Calls>,
    /// Its REST routes, which keep the paths they match.
    pub(super) table: Arc<RouteTable>,
    pub(super) timeout: Duration,
    pub(super) stream_timeout: Duration,
    pub(super) max_query_length: usize,
    pub(super) admission: Admission,
}

/// The settings of [`Procedures::new`] besides the version's own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The deadline of a unary call without `Connect-Timeout-Ms`.
    pub(crate) timeout: Duration,
    /// The deadline of a stream without `Connect-Timeout-Ms`.
    pub(crate) stream_timeout: Duration,
    /// The longest query string of a GET.
    pub(crate) max_query_length: usize,
}

/// The decision for one request.
pub(crate) enum Decision {
    /// A REST request after all.
    Rest,
    /// A Connect call of a served method.
    Call(Call),
    /// A Connect request for a procedure the descriptors do not have.
    Unknown(Procedures),
}

/// One Connect call, handed to the handler in the request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(super) procedures: Procedures,
    pub(super) method: MethodDescriptor,
    pub(super) kind: Kind,
}

impl Procedures {
    pub(crate) fn new(
        calls: Arc<Calls>,
        table: Arc<RouteTable>,
        limits: Limits,
        admission: Admission,
    ) -> Self {
        Self(Arc::new(Shared {
            calls,
            table,
            timeout: limits.timeout,
            stream_timeout: limits.stream_timeout,
            max_query_length: limits.max_query_length,
            admission,
        }))
    }

    /// Whether the request is REST after all, a call of a served method, or a procedure the
    /// descriptors do not have.
    pub(crate) fn decide(&self, request: &Request, kind: Kind) -> Decision {
        let path = request.uri().path();
        // An auto-mapped route is the gRPC path itself, never an API's chosen REST path: a
        // request that says it is Connect goes to Connect there (its errors are Connect's), a
        // plain JSON POST stays REST.
        let connect_said = kind != Kind::Unary || request.headers().contains_key(PROTOCOL_VERSION);
        if self.rest_matches(request.method(), path, connect_said) {
            return Decision::Rest;
        }
        let method = procedure(path).and_then(|(service, method)| {
            self.0
                .calls
                .pool
                .get_service_by_name(service)?
                .methods()
                .find(|m| m.name() == method)
        });
        match method {
            Some(method) => Decision::Call(Call {
                procedures: self.clone(),
                method,
                kind,
            }),
            None if connect_said => Decision::Unknown(self.clone()),
            None => Decision::Rest,
        }
    }

    /// The call's metadata from the request's headers and peer ([`metadata::connect_request_metadata`]),
    /// within `--max-metadata-bytes`.
    pub(super) fn metadata(&self, parts: &http::request::Parts) -> Result<MetadataMap, Error> {
        let client = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0);
        let metadata = metadata::connect_request_metadata(&parts.headers, client);
        if metadata::list_size(&metadata) > self.0.calls.max_metadata_bytes {
            return Err(Error::MetadataTooLarge {
                limit: self.0.calls.max_metadata_bytes,
            });
        }
        Ok(metadata)
    }

    /// Reads a request's body (within the body limit and read timeout) and drops it, before
    /// an answer that does not need it: an HTTP/1.1 client still writing a body the server
    /// has not read sees its connection close (EPIPE) rather than the answer.
    pub(crate) async fn drain(&self, request: Request) {
        let (parts, body) = request.into_parts();
        let _ = self.0.calls.read_body(body, &parts.headers).await;
    }

    /// Whether a REST route matches this path and HTTP method (an auto-mapped one only unless
    /// `connect_said`).
    fn rest_matches(&self, method: &Method, path: &str, connect_said: bool) -> bool {
        let table = &self.0.table;
        let (raw, verb) = split_request_path(path, |v| table.has_verb(v));
        let Ok(segments) = raw
            .iter()
            .map(|s| transcode::path_segment(s))
            .collect::<Result<Vec<_>, _>>()
        else {
            return false;
        };
        match table.lookup(method, &segments, verb) {
            Lookup::Found { route, .. } => {
                !(connect_said && route.binding.source == crate::rules::RuleSource::Auto)
            }
            _ => false,
        }
    }
}

impl Call {
    /// Hands the call to [`super::router`] with its request.
    pub(crate) fn attach(self, request: &mut Request) {
        request.extensions_mut().insert(self);
    }
}

/// The call's deadline from `Connect-Timeout-Ms` (at most 10 digits, as the protocol
/// says), else `default`.
pub(super) fn timeout(headers: &HeaderMap, default: Duration) -> Result<Duration, Error> {
    let Some(value) = headers.get("connect-timeout-ms") else {
        return Ok(default);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(Error::InvalidArgument(format!(
            "invalid Connect-Timeout-Ms {:?}: expected 1 to 10 digits (milliseconds)",
            String::from_utf8_lossy(bytes)
        )));
    }
    // Ten digits always fit a u64.
    let millis = std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    Ok(Duration::from_millis(millis))
}

/// Refuses a `Connect-Protocol-Version` other than `1`.
pub(super) fn check_protocol_version(headers: &HeaderMap) -> Result<(), Error> {
    match headers.get(PROTOCOL_VERSION) {
        Some(v) if v.as_bytes() != b"1" => Err(Error::InvalidArgument(format!(
            "unsupported Connect-Protocol-Version {:?}: this gateway speaks version 1",
            String::from_utf8_lossy(v.as_bytes())
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, uri: &str, content_type: Option<&str>) -> Request {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        match builder.body(axum::body::Body::empty()) {
            Ok(r) => r,
            Err(e) => panic!("request: {e}"),
        }
    }

    #[test]
    fn only_connect_shaped_requests_are_candidates() {
        let path = "/telemetry.v1.Sensors/GetReading";
        let of = |m: Method, uri: &str, ct: Option<&str>| Kind::of(&request(m, uri, ct));
        assert_eq!(
            of(Method::POST, path, Some("application/json")),
            Some(Kind::Unary)
        );
        assert_eq!(
            of(Method::POST, path, Some("Application/Proto; x=y")),
            Some(Kind::Unary)
        );
        assert_eq!(
            of(Method::POST, path, Some("application/connect+json")),
            Some(Kind::Stream)
        );
        assert_eq!(
            of(
                Method::GET,
                &format!("{path}?encoding=json&connect=v1"),
                None
            ),
            Some(Kind::Get)
        );
        assert_eq!(of(Method::GET, path, None), None);
        assert_eq!(of(Method::POST, path, Some("text/plain")), None);
        assert_eq!(of(Method::POST, path, None), None);
        assert_eq!(of(Method::PUT, path, Some("application/json")), None);
        assert_eq!(
            of(
                Method::POST,
                "/v1/sensors/s1/readings",
                Some("application/json")
            ),
            None
        );
        assert_eq!(
            of(Method::POST, "/Sensors/", Some("application/json")),
            None
        );
    }

    #[test]
    fn connect_timeout_ms_is_one_to_ten_digits() {
        let with = |v: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("connect-timeout-ms", http::HeaderValue::from_static(v));
            timeout(&headers, Duration::ZERO)
        };
        assert_eq!(with("250").ok(), Some(Duration::from_millis(250)));
        assert_eq!(
            with("9999999999").ok(),
            Some(Duration::from_millis(9_999_999_999))
        );
        for bad in ["", "12345678901", "-1", "1.5", "10s"] {
            assert!(with(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            timeout(&HeaderMap::new(), Duration::from_secs(3)).ok(),
            Some(Duration::from_secs(3))
        );
    }
}
