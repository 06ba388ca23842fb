//! The details of a failed call's `google.rpc.Status` (the `grpc-status-details-bin`
//! trailer), rendered as proto3 JSON for the error body.
//!
//! Each detail is an `Any`; one whose type the descriptor pool knows (the API's own types, and
//! the standard `google.rpc` details the gateway always adds) becomes its JSON form with
//! `@type`, any other `{"@type", "value": <base64>}`, so nothing the backend said is lost.

use base64::Engine;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::{
    limits::MAX_MESSAGE_DEPTH,
    transcode::{depth, nonfinite::ProtoFloats},
};

/// Renders the encoded `google.rpc.Status` `bytes` (empty: no details): each detail as JSON,
/// as the message when `pool` knows its type, else as `{"@type", "value": base64}`.
pub fn render(
    bytes: &[u8],
    pool: &DescriptorPool,
    options: &SerializeOptions,
) -> Vec<serde_json::Value> {
    decoded(bytes)
        .iter()
        .map(|any| any_json(any, pool, options))
        .collect()
}

/// The details of the encoded `google.rpc.Status` `bytes`; none when empty or not a status.
fn decoded(bytes: &[u8]) -> Vec<prost_types::Any> {
    if bytes.is_empty() {
        return Vec::new();
    }
    match tonic_types::pb::Status::decode(bytes) {
        Ok(status) => status.details,
        Err(_) => {
            tracing::debug!("grpc-status-details-bin is not a google.rpc.Status; dropped");
            Vec::new()
        }
    }
}

/// The same details in the Connect protocol's shape: `type` (the message's full name, without
/// the `type.googleapis.com/` prefix), `value` (its bytes in base64 without padding, as
/// Connect's spec asks), and, for a type `pool` knows, `debug`: its JSON, for people reading
/// the wire (Connect clients decode `value`).
pub fn connect(
    bytes: &[u8],
    pool: &DescriptorPool,
    options: &SerializeOptions,
) -> Vec<serde_json::Value> {
    decoded(bytes)
        .iter()
        .map(|any| {
            let mut object = serde_json::Map::new();
            object.insert("type".to_owned(), type_name(any).into());
            let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&any.value);
            object.insert("value".to_owned(), b64.into());
            if let Some(debug) = known_json(any, pool, options) {
                object.insert("debug".to_owned(), debug);
            }
            serde_json::Value::Object(object)
        })
        .collect()
}

fn type_name(any: &prost_types::Any) -> &str {
    any.type_url.rsplit('/').next().unwrap_or_default()
}

/// The JSON of `any`'s message when `pool` knows its type.
fn known_json(
    any: &prost_types::Any,
    pool: &DescriptorPool,
    options: &SerializeOptions,
) -> Option<serde_json::Value> {
    pool.get_message_by_name(type_name(any))
        .and_then(|desc| DynamicMessage::decode(desc, any.value.as_slice()).ok())
        // An `Any` nested in the detail is decoded again by the serializer, with a fresh
        // recursion budget: past the bound, the detail goes as its bytes.
        .filter(|msg| depth::check(msg, MAX_MESSAGE_DEPTH).is_ok())
        .and_then(|msg| {
            msg.serialize_with_options(ProtoFloats(serde_json::value::Serializer), options)
                .ok()
        })
}

fn any_json(
    any: &prost_types::Any,
    pool: &DescriptorPool,
    options: &SerializeOptions,
) -> serde_json::Value {
    let decoded = known_json(any, pool, options);
    let mut object = serde_json::Map::new();
    object.insert("@type".to_owned(), any.type_url.clone().into());
    match decoded {
        Some(serde_json::Value::Object(fields)) => object.extend(fields),
        // Well-known types with a non-object JSON form nest it under "value", as proto3 JSON
        // does for `Any`.
        Some(other) => {
            object.insert("value".to_owned(), other);
        }
        None => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&any.value);
            object.insert("value".to_owned(), b64.into());
        }
    }
    serde_json::Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// prost-reflect's serializer decodes each `Any` payload afresh, with a fresh recursion
    /// budget: 5,000 `Any`s one in another used to overflow the stack.
    #[test]
    fn a_detail_nesting_any_without_end_is_kept_as_its_bytes() {
        let pool = crate::descriptors::with_standard_types(DescriptorPool::new());
        let mut any = prost_types::Any {
            type_url: "type.googleapis.com/google.protobuf.StringValue".into(),
            value: "x".to_owned().encode_to_vec(),
        };
        for _ in 0..5000 {
            any = prost_types::Any {
                type_url: "type.googleapis.com/google.protobuf.Any".into(),
                value: any.encode_to_vec(),
            };
        }
        let status = tonic_types::pb::Status {
            code: 3,
            message: "deep".into(),
            details: vec![any],
        }
        .encode_to_vec();
        let rendered = render(&status, &pool, &SerializeOptions::new());
        assert_eq!(rendered.len(), 1);
        assert_eq!(
            rendered[0]["@type"],
            "type.googleapis.com/google.protobuf.Any"
        );
        assert!(rendered[0]["value"].is_string(), "{}", rendered[0]);
    }
}
