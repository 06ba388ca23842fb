//! The response message (or its `response_body` field) as proto3 JSON bytes.
//!
//! Serialized straight into a byte buffer: going through `serde_json::Value` would sort the
//! keys (losing proto field order) and cost an extra tree per response.

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
    let mut out = Vec::with_capacity(256);
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
