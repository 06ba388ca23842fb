//! The response message (or its `response_body` field) as proto3 JSON bytes: from its wire
//! bytes by the route's plan ([`super::wire`]) when it can, else through a `DynamicMessage`
//! ([`to_json`]).
//!
//! Serialized straight into a byte buffer: going through `serde_json::Value` would sort the
//! keys (losing proto field order) and cost an extra tree per response. The buffer starts at
//! about the size the JSON will have (twice the protobuf size), so it is rarely regrown.
//! (sonic-rs's SIMD serializer was tried: without `target-cpu` flags it cost more
//! instructions than serde_json, callgrind.)

use prost::Message as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, MessageDescriptor, ReflectMessage, SerializeOptions, Value,
};

use super::{depth, nonfinite::ProtoFloats, wire};
use crate::limits::MAX_MESSAGE_DEPTH;

/// Why a response message could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// The bytes are not a message of the method's output type.
    #[error("decoding {name} failed: {source}")]
    Decode {
        name: String,
        source: prost::DecodeError,
    },
    /// Messages nested deeper than the gateway writes (see [`super::depth`]).
    #[error("{name} nests messages more than {limit} levels deep, at {path:?}")]
    TooDeep {
        name: String,
        path: String,
        limit: usize,
    },
    /// A value JSON cannot express.
    #[error("serializing {name} as JSON: {source}")]
    Serialize {
        name: String,
        source: serde_json::Error,
    },
}

/// How one response is written: the plan of its type, and the options both writers take.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// The method's output type.
    pub descriptor: &'a MessageDescriptor,
    /// Its compiled plan.
    pub plan: &'a wire::Plan,
    /// The rule's `response_body` field, if any.
    pub response_body: Option<&'a FieldDescriptor>,
    pub wire: &'a wire::Options,
    pub reflect: &'a SerializeOptions,
}

/// Writes the message `bytes` encode as JSON: straight from the bytes, or (for what the plan
/// leaves to it) through a `DynamicMessage`.
///
/// # Errors
/// Bytes that are no message of the type, or a value JSON cannot express.
pub fn wire_to_json(bytes: &[u8], output: &Output<'_>) -> Result<Vec<u8>, ResponseError> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(2).max(64));
    let written = match output.response_body {
        None => wire::write(output.plan, bytes, output.wire, &mut out),
        Some(field) => wire::write_field(output.plan, field.number(), bytes, output.wire, &mut out),
    };
    if written.is_ok() {
        return Ok(out);
    }
    let message = decode(output.descriptor, bytes)?;
    // prost's decoder bounded the message itself, but not the `Any` payloads that
    // prost-reflect's serializer decodes again, each with a fresh budget.
    depth::check(&message, MAX_MESSAGE_DEPTH).map_err(|e| ResponseError::TooDeep {
        name: output.descriptor.full_name().to_owned(),
        path: e.path,
        limit: MAX_MESSAGE_DEPTH,
    })?;
    to_json(&message, output.response_body, output.reflect).map_err(|source| {
        ResponseError::Serialize {
            name: output.descriptor.full_name().to_owned(),
            source,
        }
    })
}

/// The message `bytes` encode, for what needs it whole (`HttpBody`, event ids).
///
/// # Errors
/// Bytes that are no message of the type.
pub fn decode(
    descriptor: &MessageDescriptor,
    bytes: &[u8],
) -> Result<DynamicMessage, ResponseError> {
    DynamicMessage::decode(descriptor.clone(), bytes).map_err(|source| ResponseError::Decode {
        name: descriptor.full_name().to_owned(),
        source,
    })
}

/// Writes `message` as JSON; with `response_body`, only that field's value. Non-finite
/// wrapper floats are written as proto3 JSON's strings ([`ProtoFloats`]).
///
/// # Errors
/// When serialization fails (only for values JSON cannot express).
pub fn to_json(
    message: &DynamicMessage,
    response_body: Option<&FieldDescriptor>,
    options: &SerializeOptions,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(message.encoded_len().saturating_mul(2).max(64));
    let Some(field) = response_body else {
        message.serialize_with_options(
            ProtoFloats(&mut serde_json::Serializer::new(&mut out)),
            options,
        )?;
        return Ok(out);
    };
    match &*message.get_field(field) {
        Value::Message(inner) if !field.is_list() && !field.is_map() => {
            inner.serialize_with_options(
                ProtoFloats(&mut serde_json::Serializer::new(&mut out)),
                options,
            )?;
        }
        Value::List(items) if items.iter().all(|v| matches!(v, Value::Message(_))) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if let Value::Message(m) = item {
                    m.serialize_with_options(
                        ProtoFloats(&mut serde_json::Serializer::new(&mut out)),
                        options,
                    )?;
                }
            }
            out.push(b']');
        }
        // Scalars, scalar lists and maps: let prost-reflect render the field inside a
        // one-field message, then take the value out. Their key order does not matter
        // (maps are unordered in proto) and this path is rare.
        value => {
            let mut only = DynamicMessage::new(message.descriptor());
            only.set_field(field, value.clone());
            let options = options.clone().skip_default_fields(false);
            let rendered =
                only.serialize_with_options(ProtoFloats(serde_json::value::Serializer), &options)?;
            let value = match rendered {
                serde_json::Value::Object(mut fields) => fields
                    .remove(field.name())
                    .or_else(|| fields.remove(field.json_name()))
                    .unwrap_or(serde_json::Value::Null),
                _ => serde_json::Value::Null,
            };
            serde_json::to_writer(&mut out, &value)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use prost_reflect::DescriptorPool;

    use super::*;

    /// Straight to bytes is what serde_json writes: escapes, non-ASCII, float extremes.
    #[test]
    fn the_bytes_are_serde_json_s() {
        let pool = crate::descriptors::with_standard_types(DescriptorPool::new());
        let options = SerializeOptions::new();
        let cases = [
            (
                "google.protobuf.StringValue",
                Value::String("\u{0}\u{1f}\"\\/\u{7f}é\u{2028}\u{feff}😀\n\t\r</script>".into()),
            ),
            ("google.protobuf.FloatValue", Value::F32(f32::MAX)),
            ("google.protobuf.FloatValue", Value::F32(f32::MIN_POSITIVE)),
            (
                "google.protobuf.DoubleValue",
                Value::F64(-1.797_693_134_862_315_7e308),
            ),
            ("google.protobuf.DoubleValue", Value::F64(0.1)),
            ("google.protobuf.Int64Value", Value::I64(i64::MIN)),
        ];
        for (name, value) in cases {
            let Some(desc) = pool.get_message_by_name(name) else {
                panic!("{name} is a standard type");
            };
            let mut message = DynamicMessage::new(desc);
            message.set_field_by_name("value", value);
            let ours = to_json(&message, None, &options).ok();
            let mut theirs = Vec::new();
            let written = message
                .serialize_with_options(&mut serde_json::Serializer::new(&mut theirs), &options);
            assert!(written.is_ok(), "{name}");
            assert_eq!(
                ours.as_deref().map(String::from_utf8_lossy),
                Some(String::from_utf8_lossy(&theirs)),
                "{name}"
            );
        }
    }
}
