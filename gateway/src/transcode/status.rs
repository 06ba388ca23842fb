//! The success status of an answer, so that HTTP clients and caches read a creation as a
//! creation (`201` and its `Location`) and an empty answer as one (`204`), as the OpenAPI
//! document says.
//!
//! Two sources, as grpc-gateway reads them:
//!
//! - the method's `openapiv2_operation` option (grpc-gateway's protoc-gen-openapiv2 options):
//!   when its `responses` declare exactly one 2xx status and it is not 200, every successful
//!   answer of the method has it, and the document states it in place of 200;
//! - the backend, per call, in its response header metadata: `x-http-code` (a 2xx or 3xx
//!   status; anything else is ignored and logged, since a backend must not turn a success
//!   into an error the gRPC status does not say) and `location` (the `Location` header).
//!
//! Both are control metadata: they are read here, never copied into `Grpc-Metadata-*`. Only
//! answers of one message get them: a stream's status is sent before its messages, and an
//! `EventSource` accepts nothing but 200.

use axum::{body::Body, response::Response};
use http::{HeaderValue, StatusCode, header};
use prost_reflect::{MethodDescriptor, Value};
use tonic::metadata::MetadataMap;

/// The response header metadata whose value is the answer's HTTP status.
pub const X_HTTP_CODE: &str = "x-http-code";

/// The response header metadata whose value is the answer's `Location`.
pub const LOCATION: &str = "location";

/// The option whose `responses` declare the method's statuses.
const OPERATION_OPTION: &str = "grpc.gateway.protoc_gen_openapiv2.options.openapiv2_operation";

/// A success status a method's options declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The status (2xx, not 200).
    pub status: StatusCode,
    /// The response's description in the option, if it gives one.
    pub description: Option<String>,
}

/// The success status `method`'s `openapiv2_operation` declares: the one 2xx key of its
/// `responses` when there is exactly one and it is not 200. Several 2xx statuses leave the
/// choice to the backend (`x-http-code`), with 200 as the default.
pub fn declared(method: &MethodDescriptor) -> Option<Declared> {
    if method.is_server_streaming() {
        return None;
    }
    let ext = method
        .parent_pool()
        .get_extension_by_name(OPERATION_OPTION)?;
    let options = method.options();
    if !options.has_extension(&ext) {
        return None;
    }
    let operation = options.get_extension(&ext);
    let responses = operation.as_message()?.get_field_by_name("responses")?;
    let map = responses.as_map()?;
    let mut successes = map.iter().filter_map(|(key, response)| {
        let status = key
            .as_str()
            .and_then(|k| k.trim().parse::<u16>().ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
            .filter(StatusCode::is_success)?;
        let description = response
            .as_message()
            .and_then(|r| r.get_field_by_name("description"))
            .and_then(|d| match &*d {
                Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                _ => None,
            });
        Some(Declared {
            status,
            description,
        })
    });
    let only = successes.next()?;
    (successes.next().is_none() && only.status != StatusCode::OK).then_some(only)
}

/// Whether `key` is control metadata this module reads, never forwarded as a header.
pub fn is_control(key: &str) -> bool {
    key == X_HTTP_CODE
}

/// Gives `response` (a successful answer of one message) its status: the backend's
/// `x-http-code` when valid, else `declared`; and its `Location` from the `location`
/// metadata. A status that has no body (204, 205, 304) drops the body.
pub fn apply(response: &mut Response, declared: StatusCode, metadata: &MetadataMap) {
    let status = metadata
        .get(X_HTTP_CODE)
        .and_then(|value| {
            let chosen = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u16>().ok())
                .and_then(|n| StatusCode::from_u16(n).ok())
                .filter(|s| s.is_success() || s.is_redirection());
            if chosen.is_none() {
                tracing::warn!(
                    value = ?value,
                    "x-http-code metadata ignored: not a 2xx or 3xx status"
                );
            }
            chosen
        })
        .unwrap_or(declared);
    *response.status_mut() = status;
    if let Some(location) = metadata
        .get(LOCATION)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
    {
        response.headers_mut().insert(header::LOCATION, location);
        // Said once, as the header it is.
        response.headers_mut().remove("grpc-metadata-location");
    }
    if matches!(
        status,
        StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT | StatusCode::NOT_MODIFIED
    ) {
        *response.body_mut() = Body::empty();
        response.headers_mut().remove(header::CONTENT_TYPE);
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(metadata: &[(&'static str, &'static str)], declared: StatusCode) -> Response {
        let mut response = Response::new(Body::from("{}"));
        let mut map = MetadataMap::new();
        for (key, value) in metadata {
            map.insert(*key, tonic::metadata::MetadataValue::from_static(value));
        }
        apply(&mut response, declared, &map);
        response
    }

    #[test]
    fn the_backend_chooses_a_2xx_or_3xx_status_and_nothing_else() {
        assert_eq!(
            answer(&[("x-http-code", "202")], StatusCode::OK).status(),
            202
        );
        assert_eq!(
            answer(&[("x-http-code", "303")], StatusCode::CREATED).status(),
            303
        );
        for ignored in ["404", "500", "101", "abc", "99999", ""] {
            assert_eq!(
                answer(&[("x-http-code", ignored)], StatusCode::CREATED).status(),
                201,
                "{ignored}"
            );
        }
    }

    #[test]
    fn no_content_has_no_body_and_location_is_a_header() {
        let response = answer(&[("location", "/things/7")], StatusCode::NO_CONTENT);
        assert_eq!(response.status(), 204);
        assert_eq!(response.headers()[header::LOCATION], "/things/7");
        assert_eq!(http_body::Body::size_hint(response.body()).exact(), Some(0));
    }
}
