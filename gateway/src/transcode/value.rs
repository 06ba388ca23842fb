//! One text value (a path variable or a query parameter) parsed by the proto type of the field
//! it sets, following proto3 JSON's string forms.

use std::sync::LazyLock;

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use bytes::Bytes;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use serde::de::IntoDeserializer;

/// Base64 engines that accept both padded and unpadded input, as proto3 JSON readers must.
static STANDARD: LazyLock<GeneralPurpose> = LazyLock::new(|| {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
});
static URL_SAFE: LazyLock<GeneralPurpose> = LazyLock::new(|| {
    GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
});

/// The well-known wrapper messages, whose text form is their wrapped scalar's.
const WRAPPERS: &[&str] = &[
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
];

/// Well-known messages whose proto3 JSON form is a single string.
const STRING_FORMS: &[&str] = &[
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
];

/// Parses `text` as one element of `field` (for a repeated field, one item). `None` when it
/// does not parse, overflows, or the field's type has no text form.
pub(super) fn parse(field: &FieldDescriptor, text: &str) -> Option<Value> {
    parse_kind(&field.kind(), text)
}

fn parse_kind(kind: &Kind, text: &str) -> Option<Value> {
    Some(match kind {
        Kind::Double => Value::F64(parse_f64(text)?),
        // A value outside f32's range must not silently become infinity.
        Kind::Float => {
            let v = parse_f64(text)?;
            let narrowed = v as f32;
            if v.is_finite() && !narrowed.is_finite() {
                return None;
            }
            Value::F32(narrowed)
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(text.parse().ok()?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(text.parse().ok()?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(text.parse().ok()?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(text.parse().ok()?),
        Kind::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return None,
        },
        Kind::String => Value::String(text.to_owned()),
        Kind::Bytes => Value::Bytes(Bytes::from(
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE.decode(text))
                .ok()?,
        )),
        // proto3 enums are open: a number the proto does not name is a valid value (the
        // gateway writes such numbers in responses, so a client must be able to send them).
        Kind::Enum(e) => Value::EnumNumber(match e.get_value_by_name(text) {
            Some(v) => v.number(),
            None => text.parse().ok()?,
        }),
        Kind::Message(m) => Value::Message(parse_message(m, text)?),
    })
}

/// Floats as proto3 JSON writes them (`NaN`, `Infinity`, `-Infinity`) or as decimal numbers;
/// a finite literal too large for f64 is an overflow, not infinity.
fn parse_f64(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust also accepts "inf" and "nan" spellings; proto3 JSON does not.
            if !text
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            {
                return None;
            }
            let v: f64 = text.parse().ok()?;
            v.is_finite().then_some(v)
        }
    }
}

fn parse_message(desc: &MessageDescriptor, text: &str) -> Option<DynamicMessage> {
    let name = desc.full_name();
    if WRAPPERS.contains(&name) {
        let inner = desc.get_field(1)?;
        let mut msg = DynamicMessage::new(desc.clone());
        msg.try_set_field(&inner, parse_kind(&inner.kind(), text)?)
            .ok()?;
        return Some(msg);
    }
    if name == "google.protobuf.FieldMask" {
        return Some(field_mask(desc, text.split(',').map(snake_path).collect()));
    }
    if STRING_FORMS.contains(&name) {
        let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            text.into_deserializer();
        return DynamicMessage::deserialize(desc.clone(), de).ok();
    }
    None
}

/// A field-mask path as proto names: each segment in lowerCamelCase (`singleNested`) becomes
/// snake_case; one already in snake_case (`single_nested`) stays, so both spellings work.
fn snake_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for (i, segment) in path.trim().split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        if segment.contains('_') {
            out.push_str(segment);
            continue;
        }
        for ch in segment.chars() {
            if ch.is_ascii_uppercase() {
                out.push('_');
                out.push(ch.to_ascii_lowercase());
            } else {
                out.push(ch);
            }
        }
    }
    out
}

/// A `google.protobuf.FieldMask` of `desc` holding `paths`.
pub(super) fn field_mask(desc: &MessageDescriptor, paths: Vec<String>) -> DynamicMessage {
    let mut mask = DynamicMessage::new(desc.clone());
    let paths = paths
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(Value::String)
        .collect();
    mask.set_field_by_name("paths", Value::List(paths));
    mask
}

/// What a field expects, for error messages: `int32`, `enum library.v1.Genre`,
/// `google.protobuf.Timestamp`...
pub(super) fn expected(field: &FieldDescriptor) -> String {
    match field.kind() {
        Kind::Double => "double".into(),
        Kind::Float => "float".into(),
        Kind::Int32 => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Uint32 => "uint32".into(),
        Kind::Uint64 => "uint64".into(),
        Kind::Sint32 => "sint32".into(),
        Kind::Sint64 => "sint64".into(),
        Kind::Fixed32 => "fixed32".into(),
        Kind::Fixed64 => "fixed64".into(),
        Kind::Sfixed32 => "sfixed32".into(),
        Kind::Sfixed64 => "sfixed64".into(),
        Kind::Bool => "bool (true or false)".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes (base64)".into(),
        Kind::Enum(e) => format!("enum {} (a value name or number)", e.full_name()),
        Kind::Message(m) => m.full_name().to_owned(),
    }
}

/// Whether a field of this message type can be set from text at all.
pub(super) fn message_has_text_form(desc: &MessageDescriptor) -> bool {
    WRAPPERS.contains(&desc.full_name()) || STRING_FORMS.contains(&desc.full_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_accept_proto_json_specials_and_reject_overflow() {
        assert!(parse_kind(&Kind::Double, "NaN").is_some());
        assert_eq!(
            parse_kind(&Kind::Double, "-Infinity"),
            Some(Value::F64(f64::NEG_INFINITY))
        );
        assert_eq!(parse_kind(&Kind::Double, "1e309"), None);
        assert_eq!(parse_kind(&Kind::Float, "1e39"), None);
        assert_eq!(parse_kind(&Kind::Float, "inf"), None);
        assert_eq!(parse_kind(&Kind::Float, "1.5"), Some(Value::F32(1.5)));
    }

    #[test]
    fn integers_reject_overflow_and_bools_are_strict() {
        assert_eq!(parse_kind(&Kind::Int32, "2147483648"), None);
        assert_eq!(parse_kind(&Kind::Uint32, "-1"), None);
        assert_eq!(
            parse_kind(&Kind::Int64, "-9223372036854775808"),
            Some(Value::I64(i64::MIN))
        );
        assert_eq!(parse_kind(&Kind::Bool, "yes"), None);
        assert_eq!(parse_kind(&Kind::Bool, "true"), Some(Value::Bool(true)));
    }

    #[test]
    fn field_mask_paths_accept_proto_and_camel_names() {
        assert_eq!(snake_path("string_value"), "string_value");
        assert_eq!(snake_path("singleNested.name"), "single_nested.name");
        assert_eq!(
            snake_path(" single_nested.amountCents "),
            "single_nested.amount_cents"
        );
    }

    #[test]
    fn bytes_accept_standard_and_url_safe_base64() {
        let want = Some(Value::Bytes(Bytes::from_static(&[0xfb, 0xff])));
        assert_eq!(parse_kind(&Kind::Bytes, "+/8="), want);
        assert_eq!(parse_kind(&Kind::Bytes, "-_8"), want);
        assert_eq!(parse_kind(&Kind::Bytes, "!!"), None);
    }
}
