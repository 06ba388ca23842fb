//! Conditional requests (RFC 9110 §8.8.3, §13): validators on transcoded unary `GET`/`HEAD`
//! answers, `304 Not Modified` for a matching `If-None-Match`, `If-Match` on writes, and
//! `Cache-Control` per method.
//!
//! - **Which ETag.** When the answer's message has a top-level string field `etag` (AIP-154),
//!   its value is the ETag: the API's own version of the resource, so an `If-Match` sent back
//!   with it means what the API means. Otherwise the ETag is a hash of the bytes sent (after
//!   `$alt`, field names and any other option shaping them), so it changes with them.
//! - **Strong, per content coding.** The hash is taken before the compression layer
//!   compresses the answer; [`evaluate`], outside that layer, then names the coding in the tag
//!   (`"…-gzip"`, `"…-br"`, as Apache does), so each representation has its own strong
//!   validator, and adds `Vary: Accept-Encoding`. It also answers `If-None-Match` there, on
//!   the tag of the representation the client would get.
//! - **If-Match on writes** fills the request's top-level `etag` field, for the backend to
//!   compare (AIP-154: the server decides, with ABORTED or FAILED_PRECONDITION); on a method
//!   whose request has none, it is a 400, never silently ignored.
//!
//! Hand-written: tower-http has no ETag or conditional-request layer, and the tag of a
//! transcoded answer needs the message (its `etag` field) that only the handler has.

use std::{collections::HashMap, hash::Hasher as _};

use axum::{extract::Request, middleware::Next, response::Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage as _, Value};

use crate::error::Error;

/// The AIP-154 field name.
const ETAG_FIELD: &str = "etag";

/// `Cache-Control` values by gRPC method full name (`--cache-control METHOD=VALUE`).
#[derive(Debug, Clone, Default)]
pub struct CacheControl(HashMap<String, HeaderValue>);

impl CacheControl {
    /// Parses `METHOD=VALUE` entries.
    ///
    /// # Errors
    /// An entry without `=`, with an empty method, or whose value is no valid header value.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for entry in entries {
            let entry = entry.as_ref();
            let (method, value) = entry
                .split_once('=')
                .filter(|(m, v)| !m.trim().is_empty() && !v.trim().is_empty())
                .ok_or_else(|| {
                    format!("--cache-control {entry:?}: expected METHOD=VALUE (pkg.Service.Method=max-age=60)")
                })?;
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("--cache-control {entry:?}: not a valid header value"))?;
            map.insert(method.trim().trim_start_matches('.').to_owned(), value);
        }
        Ok(Self(map))
    }

    /// The value for a method, by its full name.
    pub fn get(&self, method: &str) -> Option<&HeaderValue> {
        self.0.get(method)
    }

    /// Whether no method has one.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `message` has a top-level string `etag` field (AIP-154).
pub fn has_etag_field(message: &MessageDescriptor) -> bool {
    message
        .get_field_by_name(ETAG_FIELD)
        .is_some_and(|f| matches!(f.kind(), Kind::String) && !f.is_list())
}

/// The ETag of a successful `GET`/`HEAD` answer: the AIP-154 `etag` field of the answer's
/// message (`wire`, its protobuf bytes) when it has a non-empty one, else a strong tag
/// hashing the bytes of the body sent.
pub(crate) fn etag(output: &MessageDescriptor, wire: &[u8], body: &[u8]) -> HeaderValue {
    if has_etag_field(output)
        && let Ok(message) = DynamicMessage::decode(output.clone(), wire)
        && let Some(Value::String(tag)) = message.get_field_by_name(ETAG_FIELD).as_deref()
        && !tag.is_empty()
        && let Some(value) = quoted(tag)
    {
        return value;
    }
    // SipHash with fixed keys: the same bytes give the same tag in every gateway of a fleet
    // built from one release; a validator, not a security boundary.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(body);
    HeaderValue::from_str(&format!(
        "\"{:016x}{:04x}\"",
        hasher.finish(),
        body.len() & 0xffff
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// An AIP-154 `etag` value as an entity tag: kept when already quoted (`"…"` or `W/"…"`),
/// quoted otherwise; `None` for a value no header can carry.
fn quoted(tag: &str) -> Option<HeaderValue> {
    let text = if tag.starts_with('"') || tag.starts_with("W/\"") {
        tag.to_owned()
    } else {
        format!("\"{tag}\"")
    };
    HeaderValue::from_str(&text).ok()
}

/// The opaque value of an entity tag, without `W/` and quotes: what the weak comparison
/// (RFC 9110 §8.8.3.2) and an AIP-154 `etag` field compare.
fn opaque(tag: &str) -> &str {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag)
}

/// Whether an `If-None-Match` list matches `etag` (weak comparison; `*` matches any).
fn none_match(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let (Ok(list), Ok(etag)) = (if_none_match.to_str(), etag.to_str()) else {
        return false;
    };
    let etag = opaque(etag);
    list.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || opaque(candidate) == etag)
}

/// Fills the request's AIP-154 `etag` field from `If-Match` on a write. `*` (any current
/// representation) sets nothing.
///
/// # Errors
/// `If-Match` on a method whose request has no `etag` field: a 400 naming the header.
pub(crate) fn if_match(headers: &HeaderMap, message: &mut DynamicMessage) -> Result<(), Error> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let descriptor = message.descriptor();
    if !has_etag_field(&descriptor) {
        return Err(Error::InvalidArgument(format!(
            "If-Match cannot be honoured: the request message {} has no etag field (AIP-154)",
            descriptor.full_name()
        )));
    }
    let text = value
        .to_str()
        .map_err(|_| Error::InvalidArgument("If-Match is not visible ASCII".to_owned()))?
        .trim();
    if text == "*" {
        return Ok(());
    }
    if text.contains(',') {
        return Err(Error::InvalidArgument(
            "If-Match names several entity tags; the etag field holds one".to_owned(),
        ));
    }
    message.set_field_by_name(ETAG_FIELD, Value::String(opaque(text).to_owned()));
    Ok(())
}

/// Outside the compression layer: names the content coding in a strong ETag, adds
/// `Vary: Accept-Encoding`, and answers a matching `If-None-Match` on a `GET`/`HEAD` with
/// `304 Not Modified` (no body; the validators and caching headers kept).
pub(crate) async fn evaluate(request: Request, next: Next) -> Response {
    let conditional = matches!(*request.method(), Method::GET | Method::HEAD)
        .then(|| request.headers().get(header::IF_NONE_MATCH).cloned())
        .flatten();
    let mut response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let Some(etag) = response.headers().get(header::ETAG).cloned() else {
        return response;
    };
    let etag = match response.headers().get(header::CONTENT_ENCODING) {
        Some(coding) if !etag.as_bytes().starts_with(b"W/") => {
            let tag = String::from_utf8_lossy(etag.as_bytes());
            let coding = String::from_utf8_lossy(coding.as_bytes());
            let tagged = format!("\"{}-{}\"", opaque(&tag), coding.trim());
            HeaderValue::from_str(&tagged).unwrap_or(etag)
        }
        _ => etag,
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    // The representation depends on these request headers too: a cache must key on them.
    for name in ["accept-encoding", "x-goog-fieldmask"] {
        if !headers.get_all(header::VARY).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains(name))
        }) {
            headers.append(header::VARY, HeaderValue::from_static(name));
        }
    }
    if conditional.is_some_and(|inm| none_match(&inm, &etag)) {
        let mut not_modified = Response::new(axum::body::Body::empty());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        for name in [
            header::ETAG,
            header::CACHE_CONTROL,
            header::VARY,
            header::CONTENT_LOCATION,
            header::EXPIRES,
            header::DATE,
        ] {
            for value in response.headers().get_all(&name) {
                not_modified
                    .headers_mut()
                    .append(name.clone(), value.clone());
            }
        }
        return not_modified;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_star_matches_any() {
        let etag = HeaderValue::from_static("\"abc\"");
        for (list, matches) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
            ("abc", true),
        ] {
            assert_eq!(
                none_match(&HeaderValue::from_static(list), &etag),
                matches,
                "{list}"
            );
        }
    }

    #[test]
    fn cache_control_entries_parse_as_method_and_value() {
        let parsed =
            CacheControl::parse(&["a.B.C=max-age=60, public", ".a.B.D = no-store"]).expect("valid");
        assert_eq!(
            parsed.get("a.B.C"),
            Some(&HeaderValue::from_static("max-age=60, public"))
        );
        assert_eq!(
            parsed.get("a.B.D"),
            Some(&HeaderValue::from_static("no-store"))
        );
        assert!(CacheControl::parse(&["no-equals"]).is_err());
        assert!(CacheControl::parse(&["=x"]).is_err());
    }
}
