//! The response message (or its `response_body` field) as proto3 JSON bytes.
//!
//! Serialized straight into a byte buffer: going through `serde_json::Value` would sort the
//! keys (losing proto field order) and cost an extra tree per response. The buffer starts at
//! about the size the JSON will have (twice the protobuf size), so it is rarely regrown.
//! (sonic-rs's SIMD serializer was tried: without `target-cpu` flags it cost more
//! instructions than serde_json, callgrind.)

use prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, SerializeOptions, Value};

/// Writes `message` as JSON; with `response_body`, only that field's value.
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
        message.serialize_with_options(&mut serde_json::Serializer::new(&mut out), options)?;
        return Ok(out);
    };
    match &*message.get_field(field) {
        Value::Message(inner) if !field.is_list() && !field.is_map() => {
            inner.serialize_with_options(&mut serde_json::Serializer::new(&mut out), options)?;
        }
        Value::List(items) if items.iter().all(|v| matches!(v, Value::Message(_))) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if let Value::Message(m) = item {
                    m.serialize_with_options(&mut serde_json::Serializer::new(&mut out), options)?;
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
            let rendered = only.serialize_with_options(serde_json::value::Serializer, &options)?;
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
            ("google.protobuf.DoubleValue", Value::F64(f64::NAN)),
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
