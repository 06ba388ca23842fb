//! HTTP headers to gRPC metadata and back, and the `grpc-timeout` deadline: its one parser and
//! encoder, which the article service uses too.
//!
//! Only a known set of request headers is forwarded (as grpc-gateway does): forwarding every
//! header would leak hop-by-hop and browser headers into the backend and let clients spoof
//! reserved gRPC headers. A `Grpc-Metadata-` header naming what HTTP/2 forbids in a request
//! (`Proxy-Connection`, `Connection`, `TE: gzip`, ...) is a 400 naming it: forwarded, h2 would
//! refuse to send the call, a failure no backend caused. As grpc-gateway answers them,
//! response header metadata comes back as `Grpc-Metadata-<key>` headers, and trailers as
//! `Grpc-Trailer-<key>` HTTP trailers when the client says it reads trailers (`TE:
//! trailers`); the two are never merged, so a trailer cannot overwrite a header of the same
//! name. The backend's HTTP-level response headers (its own CORS answer, hop-by-hop and
//! transport fields) are not metadata and are left out.

use std::{net::SocketAddr, time::Duration};

use axum::{body::Body, response::Response};
use futures::{StreamExt as _, TryStreamExt as _};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use http_body::Frame;
use http_body_util::StreamBody;
use tonic::metadata::MetadataMap;

/// The prefix of headers that carry arbitrary metadata, in both directions.
pub const METADATA_PREFIX: &str = "grpc-metadata-";

/// The prefix of HTTP trailers that carry the call's trailing metadata.
pub const TRAILER_PREFIX: &str = "grpc-trailer-";

/// The request header carrying the client's deadline, in gRPC's `<digits><unit>` form.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

const X_REQUEST_ID: &str = "x-request-id";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// A `Grpc-Metadata-` header naming what HTTP/2 forbids in a request (RFC 9113 section
/// 8.2.2: connection-specific fields, and `TE` other than `trailers`) or what the call's own
/// head carries (`Host`, the backend's `:authority`). Forwarded, h2 would refuse to send the
/// request at all, and that refusal would count as the backend's failure; so the client is
/// told which header to drop, before any call.
#[derive(Debug, thiserror::Error)]
#[error(
    "header {header:?} cannot be forwarded: HTTP/2 forbids {key:?} in a request's metadata; leave it out"
)]
pub struct ForbiddenMetadata {
    /// The header as sent (`grpc-metadata-proxy-connection`).
    pub header: String,
    /// The metadata key it would have become.
    pub key: String,
}

/// Builds the call's metadata from the HTTP request headers.
///
/// Forwards `Authorization`, `X-Request-Id`, `Grpc-Metadata-*` (prefix stripped), and the
/// proxy headers `X-Forwarded-For` (with `client` appended) and `X-Forwarded-Host` (the
/// incoming one, else `Host`).
///
/// # Errors
/// [`ForbiddenMetadata`] for a `Grpc-Metadata-` header HTTP/2 cannot carry.
pub fn request_metadata(
    headers: &HeaderMap,
    client: Option<SocketAddr>,
) -> Result<MetadataMap, ForbiddenMetadata> {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let name_str = name.as_str();
        if name == header::AUTHORIZATION || name_str == X_REQUEST_ID {
            out.append(name.clone(), value.clone());
        } else if let Some(key) = name_str.strip_prefix(METADATA_PREFIX) {
            if is_forbidden_in_http2(key, value) {
                return Err(ForbiddenMetadata {
                    header: name_str.to_owned(),
                    key: key.to_owned(),
                });
            }
            if is_reserved(key) {
                continue;
            }
            // Header names are already lowercase and valid, so the suffix is a valid name too
            // unless empty; an invalid one is dropped rather than failing the request.
            if let Ok(key) = HeaderName::from_bytes(key.as_bytes()) {
                out.append(key, value.clone());
            }
        }
    }

    if let Some(value) = forwarded_for(headers, client) {
        out.insert(X_FORWARDED_FOR, value);
    }
    if let Some(host) = headers
        .get(X_FORWARDED_HOST)
        .or_else(|| headers.get(header::HOST))
    {
        out.insert(X_FORWARDED_HOST, host.clone());
    }
    Ok(MetadataMap::from_headers(out))
}

/// Builds a Connect call's metadata from its request headers. In the Connect protocol, as in
/// gRPC, the request headers are the call's metadata, so every header goes on, as the gRPC
/// proxy forwards them, except: the protocol's own (`Content-Type`, `Content-Encoding`,
/// `Accept-Encoding`, `Connect-*`, which Connect reserves, and `Grpc-*`, which are gRPC's and
/// would let a client set what the gateway sets, such as the deadline), the hop-by-hop ones
/// and those the `Connection` header names (HTTP/2 forbids them), `Host` (the backend's
/// `:authority`), and `Cookie` (the gateway forwards no cookies, whatever the protocol, so a
/// cross-site request carries no ambient credentials to the backend). The client's address
/// is appended to `X-Forwarded-For`, as for every call.
pub fn connect_request_metadata(headers: &HeaderMap, client: Option<SocketAddr>) -> MetadataMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let key = name.as_str();
        if is_reserved(key)
            || key.starts_with("connect-")
            || named.iter().any(|n| n == key)
            || matches!(
                key,
                "content-encoding"
                    | "accept-encoding"
                    | "proxy-connection"
                    | "cookie"
                    | X_FORWARDED_FOR
            )
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Some(value) = forwarded_for(headers, client) {
        out.insert(X_FORWARDED_FOR, value);
    }
    MetadataMap::from_headers(out)
}

/// A Connect answer's header metadata as plain response headers (Connect's leading metadata),
/// and its trailers as `Trailer-<key>` headers (a unary answer's trailing metadata), leaving
/// out what [`response_headers`] leaves out and the `connect-` keys Connect reserves.
pub fn connect_response_headers(
    headers: &MetadataMap,
    trailers: &MetadataMap,
    out: &mut HeaderMap,
) {
    for (metadata, prefix) in [(headers, ""), (trailers, "trailer-")] {
        for (name, value) in metadata.as_ref() {
            let key = name.as_str();
            if is_reserved(key) || is_http_level(key) || key.starts_with("connect-") {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(format!("{prefix}{key}").as_bytes()) {
                out.append(name, value.clone());
            }
        }
    }
}

/// The metadata a Connect stream's end message carries: each key (lower case) with its values,
/// the same keys left out as for headers.
pub fn connect_end_metadata(
    metadata: &[&MetadataMap],
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for map in metadata {
        for (name, value) in map.as_ref() {
            let key = name.as_str();
            if is_reserved(key) || is_http_level(key) || key.starts_with("connect-") {
                continue;
            }
            let Ok(value) = value.to_str() else {
                continue;
            };
            if let serde_json::Value::Array(values) = out
                .entry(key.to_owned())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            {
                values.push(value.into());
            }
        }
    }
    out
}

/// The names h2 refuses to send in a request (its `check_headers`, after RFC 9113 section
/// 8.2.2), and `Host`, which must agree with `:authority` when sent at all (section 8.3.1).
/// A name starting with `:` (a pseudo-header) cannot reach here: no HTTP/1.1 or HTTP/2 parser
/// takes it for a header name.
fn is_forbidden_in_http2(key: &str, value: &HeaderValue) -> bool {
    match key {
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
        | "host" => true,
        // `TE: trailers` is gRPC's own, and dropped as reserved; any other value is refused.
        "te" => value.as_bytes() != b"trailers",
        _ => false,
    }
}

/// The `X-Forwarded-For` a call carries on: the client's own, with the peer's address appended
/// (the peer alone when the client sent none). Transcoded and proxied calls both carry it, so
/// a backend sees the same client address whichever protocol reached it.
pub fn forwarded_for(headers: &HeaderMap, client: Option<SocketAddr>) -> Option<HeaderValue> {
    let prior = headers
        .get(X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let value = match (prior, client) {
        (Some(prior), Some(addr)) => format!("{prior}, {}", addr.ip()),
        (Some(prior), None) => prior.to_owned(),
        (None, Some(addr)) => addr.ip().to_string(),
        (None, None) => return None,
    };
    HeaderValue::from_str(&value).ok()
}

/// The size of `metadata` as HTTP/2 counts a header list (RFC 9113 section 6.5.2: each
/// field's name and value, plus 32), with the request's own pseudo-headers and gRPC headers
/// allowed for.
pub fn list_size(metadata: &MetadataMap) -> usize {
    // :method, :scheme, :path, :authority, content-type, te, grpc-timeout, user-agent.
    const PROTOCOL_OVERHEAD: usize = 512;
    PROTOCOL_OVERHEAD
        + metadata
            .as_ref()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum::<usize>()
}

/// Copies response header metadata into `Grpc-Metadata-<key>` headers, leaving out the keys
/// that belong to the gRPC protocol itself and those of the backend's HTTP layer
/// ([`is_http_level`]).
pub fn response_headers(metadata: &MetadataMap, out: &mut HeaderMap) {
    prefixed(metadata, METADATA_PREFIX, out);
}

/// The trailing metadata as `Grpc-Trailer-<key>` trailers, when the client accepts trailers;
/// else none (a client that did not ask cannot read them: grpc-gateway drops them too).
pub fn response_trailers(metadata: &MetadataMap, accepted: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    if accepted {
        prefixed(metadata, TRAILER_PREFIX, &mut out);
    }
    out
}

fn prefixed(metadata: &MetadataMap, prefix: &str, out: &mut HeaderMap) {
    for (name, value) in metadata.as_ref() {
        // `x-http-code` is the answer's status, read by `transcode::status`, not a header.
        if is_reserved(name.as_str())
            || is_http_level(name.as_str())
            || crate::transcode::status::is_control(name.as_str())
        {
            continue;
        }
        let mut prefixed = String::with_capacity(prefix.len() + name.as_str().len());
        prefixed.push_str(prefix);
        prefixed.push_str(name.as_str());
        if let Ok(name) = HeaderName::from_bytes(prefixed.as_bytes()) {
            out.append(name, value.clone());
        }
    }
}

/// Whether the request says the client reads trailers (`TE: trailers`).
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(header::TE).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',').any(|t| {
                t.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("trailers")
            })
        })
    })
}

/// Sends `trailers` after the body of `response` (nothing when empty), announcing them in a
/// `Trailer` header, which HTTP/1.1 needs before the chunked body.
pub fn attach_trailers(response: &mut Response, trailers: HeaderMap) {
    if trailers.is_empty() {
        return;
    }
    let mut names: Vec<&str> = trailers.keys().map(HeaderName::as_str).collect();
    names.dedup();
    if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
        response.headers_mut().insert(header::TRAILER, value);
    }
    // A body of unknown length, so that HTTP/1.1 goes chunked: with a known length (which
    // `with_trailers` would pass on) hyper writes Content-Length and drops the trailers.
    response.headers_mut().remove(header::CONTENT_LENGTH);
    let body = std::mem::take(response.body_mut());
    let frames = body
        .into_data_stream()
        .map_ok(Frame::data)
        .chain(futures::stream::once(std::future::ready(Ok(
            Frame::trailers(trailers),
        ))));
    *response.body_mut() = Body::new(StreamBody::new(frames));
}

/// Keys that are part of the HTTP/2 or gRPC protocol and never travel as metadata.
fn is_reserved(key: &str) -> bool {
    key.starts_with("grpc-")
        || matches!(
            key,
            "content-type"
                | "content-length"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "upgrade"
                | "host"
                | "user-agent"
                | "date"
                | "server"
        )
}

/// Response headers of the backend's HTTP layer rather than of the call: CORS answers
/// (`Access-Control-*`, `Vary`, for the backend's own browser clients; the gateway answers CORS
/// for its clients itself), hop-by-hop and transport fields. As `Grpc-Metadata-*` they would
/// only mislead a client (`grpc-metadata-access-control-allow-origin: *`).
fn is_http_level(key: &str) -> bool {
    key.starts_with("access-control-")
        || matches!(
            key,
            "vary"
                | "proxy-connection"
                | "content-encoding"
                | "accept-encoding"
                | "alt-svc"
                | "strict-transport-security"
                | "timing-allow-origin"
        )
}

/// A `Grpc-Timeout` header that is not gRPC's `1 to 8 digits + unit`.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid Grpc-Timeout header {0:?}: expected 1 to 8 digits and a unit (H, M, S, m, u, n), e.g. \"100m\""
)]
pub struct InvalidTimeout(String);

/// Reads the `Grpc-Timeout` header: `None` when absent, an error naming the header when it is
/// not gRPC's `1 to 8 digits + unit` (`H`, `M`, `S`, `m`, `u`, `n`).
///
/// # Errors
/// [`InvalidTimeout`] for a malformed value.
pub fn grpc_timeout(headers: &HeaderMap) -> Result<Option<Duration>, InvalidTimeout> {
    let Some(value) = headers.get(GRPC_TIMEOUT) else {
        return Ok(None);
    };
    parse_grpc_timeout(value.as_bytes())
        .map(Some)
        .ok_or_else(|| InvalidTimeout(String::from_utf8_lossy(value.as_bytes()).into_owned()))
}

/// Parses a `grpc-timeout` value (`100m`, `5S`, ...); `None` when malformed: 1 to 8 ASCII
/// digits (no sign) and a unit, as the gRPC HTTP/2 protocol spells it. The one parser of the
/// workspace: the article service reads its callers' deadlines with it too.
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 ASCII digits: always fits a u64.
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n.checked_mul(3600)?),
        b'M' => Duration::from_secs(n.checked_mul(60)?),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `left` as a `grpc-timeout` value: the finest unit that fits gRPC's 8 digits.
pub fn encode_grpc_timeout(left: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let secs = u128::from(left.as_secs());
    let value = [
        (left.as_nanos(), 'n'),
        (left.as_micros(), 'u'),
        (left.as_millis(), 'm'),
        (secs, 'S'),
        (secs / 60, 'M'),
        (secs / 3600, 'H'),
    ]
    .into_iter()
    .find(|(n, _)| *n <= MAX)
    .map_or_else(|| format!("{MAX}H"), |(n, unit)| format!("{n}{unit}"));
    // Digits and one ASCII letter: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("99999999H"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_is_sent_in_the_finest_unit_that_fits() {
        for (left, sent) in [
            (Duration::from_nanos(5), "5n"),
            (Duration::from_millis(250), "250000u"),
            (Duration::from_secs(30), "30000000u"),
            (Duration::from_secs(3600), "3600000m"),
            (Duration::from_secs(200_000), "200000S"),
            (Duration::from_secs(u64::MAX), "99999999H"),
        ] {
            let value = encode_grpc_timeout(left);
            assert_eq!(value, sent, "{left:?}");
            assert!(parse_grpc_timeout(value.as_bytes()).is_some());
        }
    }

    #[test]
    fn a_signed_or_spaced_timeout_is_malformed() {
        for bad in [
            &b"+5S"[..],
            b"-5S",
            b" 5S",
            b"5 S",
            b"123456789m",
            b"5",
            b"S",
            b"5s",
        ] {
            assert_eq!(
                parse_grpc_timeout(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(
            parse_grpc_timeout(b"100m"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(parse_grpc_timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout(b"9n"), Some(Duration::from_nanos(9)));
        for bad in [
            &b""[..],
            b"m",
            b"10",
            b"10x",
            b"123456789S",
            b"-1S",
            b"1.5S",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_known_headers_are_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("x-request-id", HeaderValue::from_static("r1"));
        h.insert("grpc-metadata-tenant", HeaderValue::from_static("acme"));
        h.insert("grpc-metadata-grpc-status", HeaderValue::from_static("0"));
        h.insert("cookie", HeaderValue::from_static("secret"));
        h.insert("host", HeaderValue::from_static("example.com"));
        let md = match request_metadata(&h, "10.0.0.1:5".parse().ok()) {
            Ok(md) => md.into_headers(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(md["authorization"], "Bearer t");
        assert_eq!(md["x-request-id"], "r1");
        assert_eq!(md["tenant"], "acme");
        assert_eq!(md["x-forwarded-for"], "10.0.0.1");
        assert_eq!(md["x-forwarded-host"], "example.com");
        assert!(md.get("cookie").is_none());
        assert!(md.get("grpc-status").is_none());
    }
}
