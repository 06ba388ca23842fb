//! Resuming a server stream, by a naming convention: a browser's `EventSource` reconnects with
//! the `id:` of the last event it received as its `Last-Event-ID` header; the gateway passes it
//! to the method and writes those ids, with no annotation and nothing that names an API:
//!
//! - a server-streaming method whose request message has a top-level scalar field named
//!   `last_event_id` gets the `Last-Event-ID` header there, as if it were that query parameter
//!   (so it is parsed, rejected with a 400 naming it, and checked against the field's rules like
//!   any query parameter), replacing the query's own value: the header is the newer one, since
//!   `EventSource` keeps the first URL on every reconnection;
//! - each Server-Sent Event of a response message with a top-level scalar field named
//!   `event_id` carries that value as its `id:` (unless it holds a line break, which SSE cannot
//!   carry in an id).
//!
//! A request with a body bound to the whole message (`body: "*"`) takes no query parameters,
//! so there the header is ignored.

use http::HeaderMap;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use crate::rules::{Binding, BodyRule};

/// The request field `Last-Event-ID` fills.
pub(crate) const REQUEST_FIELD: &str = "last_event_id";
/// The response field written as each event's `id:`.
pub(crate) const RESPONSE_FIELD: &str = "event_id";

/// A top-level field named `name` that is a single scalar (no message, no list or map).
fn scalar_field(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    let field = message.get_field_by_name(name)?;
    (!field.is_list() && !field.is_map() && !matches!(field.kind(), Kind::Message(_)))
        .then_some(field)
}

/// Whether `Last-Event-ID` resumes calls of `binding` (see the module docs).
pub(crate) fn follows_resume_convention(binding: &Binding) -> bool {
    binding.method.is_server_streaming()
        && !matches!(binding.body, BodyRule::Whole)
        && scalar_field(&binding.method.input(), REQUEST_FIELD).is_some()
}

/// The query the call is decoded from: `query` with the request's `Last-Event-ID` as
/// [`REQUEST_FIELD`], when the convention applies to `binding` (see the module docs).
pub(crate) fn query_with_last_event_id(
    binding: &Binding,
    headers: &HeaderMap,
    query: Option<String>,
) -> Option<String> {
    let Some(header) = headers.get("last-event-id") else {
        return query;
    };
    if !follows_resume_convention(binding) {
        return query;
    }
    // Not UTF-8: passed on as it is, for the parser to reject it by name.
    let value = String::from_utf8_lossy(header.as_bytes());
    let mut pairs: Vec<&str> = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && key != REQUEST_FIELD && key != "lastEventId"
        })
        .collect();
    let ours = format!(
        "{REQUEST_FIELD}={}",
        utf8_percent_encode(value.trim(), NON_ALPHANUMERIC)
    );
    pairs.push(&ours);
    Some(pairs.join("&"))
}

/// The field of `output` whose value is each event's `id:`, if it has one.
pub(crate) fn event_id_field(output: &MessageDescriptor) -> Option<FieldDescriptor> {
    scalar_field(output, RESPONSE_FIELD)
}

/// The `id:` of `message`, from `field` (see [`event_id_field`]).
pub(crate) fn event_id(message: &DynamicMessage, field: &FieldDescriptor) -> Option<String> {
    let id = match &*message.get_field(field) {
        Value::I32(n) | Value::EnumNumber(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    (!id.contains(['\n', '\r', '\0'])).then_some(id)
}
