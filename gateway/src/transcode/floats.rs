//! `float` fields written as JSON numbers at the edge of f32's range.
//!
//! The shortest decimal spelling of `f32::MAX` is `3.4028235e38`: Go's protojson, Python's
//! json_format, serde_json and this gateway all write it so. Read as an f64 it is a little
//! above `f32::MAX as f64`, and prost-reflect's float reader refuses anything above that
//! ("float value out of range") although it rounds to `f32::MAX`. Hand-written because
//! prost-reflect offers no hook: after that error, the body is read again as a JSON tree, each
//! number of a float field that rounds to a finite f32 is replaced by that f32 exactly, and
//! the tree is deserialized. Numbers that would round to infinity stay refused.

use prost_reflect::{DeserializeOptions, DynamicMessage, Kind, MessageDescriptor};
use serde_json::Value;

/// Whether `error` is prost-reflect's refusal of an out-of-range float.
pub(super) fn is_out_of_range(error: &serde_json::Error) -> bool {
    error.to_string().contains("float value out of range")
}

/// Deserializes `body` as `desc` with float-field numbers that round to a finite f32 clamped.
pub(super) fn deserialize_clamped(
    desc: MessageDescriptor,
    body: &[u8],
    options: &DeserializeOptions,
) -> Result<DynamicMessage, serde_json::Error> {
    let mut tree: Value = serde_json::from_slice(body)?;
    clamp_message(&mut tree, &desc);
    DynamicMessage::deserialize_with_options(desc, tree, options)
}

fn clamp_message(value: &mut Value, desc: &MessageDescriptor) {
    let Value::Object(fields) = value else {
        return;
    };
    for (key, item) in fields.iter_mut() {
        let Some(field) = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key))
        else {
            continue;
        };
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                continue;
            };
            let value_kind = entry.map_entry_value_field().kind();
            if let Value::Object(entries) = item {
                entries
                    .values_mut()
                    .for_each(|v| clamp_kind(v, &value_kind));
            }
        } else if field.is_list() {
            if let Value::Array(items) = item {
                items.iter_mut().for_each(|v| clamp_kind(v, &field.kind()));
            }
        } else {
            clamp_kind(item, &field.kind());
        }
    }
}

fn clamp_kind(value: &mut Value, kind: &Kind) {
    match kind {
        Kind::Float => clamp_float(value),
        Kind::Message(m) if m.full_name() == "google.protobuf.FloatValue" => clamp_float(value),
        Kind::Message(m) if m.full_name() == "google.protobuf.Any" => {
            let inner = value
                .get("@type")
                .and_then(Value::as_str)
                .and_then(|url| url.rsplit('/').next())
                .and_then(|name| m.parent_pool().get_message_by_name(name));
            if let Some(inner) = inner {
                clamp_message(value, &inner);
            }
        }
        Kind::Message(m) => clamp_message(value, m),
        _ => {}
    }
}

fn clamp_float(value: &mut Value) {
    let Some(v) = value.as_f64() else {
        return;
    };
    // `as` rounds to the nearest f32; only values it keeps finite are in range.
    let narrowed = v as f32;
    if v.is_finite()
        && narrowed.is_finite()
        && v.abs() > f64::from(f32::MAX)
        && let Some(n) = serde_json::Number::from_f64(f64::from(narrowed))
    {
        *value = Value::Number(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_f32_extremes_round_to_them_and_overflow_stays() {
        let mut max = serde_json::json!(3.402_823_5e38);
        clamp_float(&mut max);
        assert_eq!(max.as_f64(), Some(f64::from(f32::MAX)));
        let mut min = serde_json::json!(-3.402_823_5e38);
        clamp_float(&mut min);
        assert_eq!(min.as_f64(), Some(f64::from(f32::MIN)));
        let mut over = serde_json::json!(3.5e38);
        clamp_float(&mut over);
        assert_eq!(over.as_f64(), Some(3.5e38));
    }
}
