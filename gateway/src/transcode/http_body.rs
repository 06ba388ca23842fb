//! `google.api.HttpBody`: a method whose request or response is raw bytes with a content type
//! (uploads, downloads, any non-JSON payload), as grpc-gateway, Envoy and Vanguard serve it.
//!
//! A request takes the raw body and its `Content-Type` when its rule's body is `"*"` on an
//! `HttpBody` request, or a body field of type `HttpBody` (the other fields come from the
//! path and query as usual). A response that is an `HttpBody`, or whose rule's
//! `response_body` names an `HttpBody` field, is answered as its `data`, with its
//! `content_type` (a stream of them as a download).

use bytes::Bytes;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use crate::rules::{Binding, BodyRule};

/// The message whose fields carry a body as raw bytes and its content type, not as JSON.
pub const HTTP_BODY: &str = "google.api.HttpBody";

/// Whether messages of `desc` are raw HTTP bodies.
pub fn is_http_body(desc: &MessageDescriptor) -> bool {
    desc.full_name() == HTTP_BODY
}

/// Where a raw body is in a route's messages: where a raw request body goes, or where a raw
/// response body is taken from.
#[derive(Debug, Clone)]
pub enum RawBody {
    /// The message is the `HttpBody`.
    Whole,
    /// This field of the message is.
    Field(FieldDescriptor),
}

/// The raw-body target of a route's rule, if it has one.
pub fn raw_target(binding: &Binding) -> Option<RawBody> {
    match &binding.body {
        BodyRule::Whole if is_http_body(&binding.method.input()) => Some(RawBody::Whole),
        BodyRule::Field(field) if !field.is_list() => match field.kind() {
            Kind::Message(m) if is_http_body(&m) => Some(RawBody::Field(field.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// Where a route's raw response body is, if its answers are one: the output message when it
/// is an `HttpBody` (and no `response_body` picks a field of it), or the `response_body` field
/// when that is a singular `HttpBody`.
pub fn raw_response(binding: &Binding) -> Option<RawBody> {
    match &binding.response_body {
        None if is_http_body(&binding.method.output()) => Some(RawBody::Whole),
        Some(field) if !field.is_list() && !field.is_map() => match field.kind() {
            Kind::Message(m) if is_http_body(&m) => Some(RawBody::Field(field.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// Puts `data` with `content_type` where `target` says, in `message` (the request message,
/// already filled from the path and query).
pub fn fill(message: &mut DynamicMessage, target: &RawBody, content_type: &str, data: Bytes) {
    match target {
        RawBody::Whole => set_parts(message, content_type, data),
        RawBody::Field(field) => {
            if let Kind::Message(desc) = field.kind() {
                let mut body = DynamicMessage::new(desc);
                set_parts(&mut body, content_type, data);
                message.set_field(field, Value::Message(body));
            }
        }
    }
}

/// An `HttpBody` of type `desc` holding one chunk of a streamed upload.
pub fn chunk(desc: MessageDescriptor, content_type: &str, data: Bytes) -> DynamicMessage {
    let mut body = DynamicMessage::new(desc);
    set_parts(&mut body, content_type, data);
    body
}

fn set_parts(body: &mut DynamicMessage, content_type: &str, data: Bytes) {
    body.set_field_by_name("content_type", Value::String(content_type.to_owned()));
    body.set_field_by_name("data", Value::Bytes(data));
}

/// The content type and data of the `HttpBody` a response message carries where `source`
/// says (an unset field: no type, no data).
pub fn response_parts(message: &DynamicMessage, source: &RawBody) -> (String, Bytes) {
    match source {
        RawBody::Whole => parts(message),
        RawBody::Field(field) => match &*message.get_field(field) {
            Value::Message(body) => parts(body),
            _ => (String::new(), Bytes::new()),
        },
    }
}

/// An `HttpBody`'s content type and data.
fn parts(message: &DynamicMessage) -> (String, Bytes) {
    let content_type = match message.get_field_by_name("content_type").as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let data = match message.get_field_by_name("data").as_deref() {
        Some(Value::Bytes(b)) => b.clone(),
        _ => Bytes::new(),
    };
    (content_type, data)
}
