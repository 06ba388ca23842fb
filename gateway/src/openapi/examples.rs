//! Examples derived from a schema, for the values the proto gives none for.
//!
//! Swagger UI prefills "Try it out" from schema examples and schemathesis' examples phase sends
//! them, so every value schema gets one that the gateway accepts: numbers within their bounds
//! (1 unless the bounds exclude it), strings of their format (`date-time`, `uuid`, `email`,
//! `byte`, ...) or else the field's name padded or cut to the length bounds, the first
//! non-zero value of an enum. A string with a pattern the generator cannot satisfy gets none
//! (no regex engine is worth carrying for this: the proto can state an example instead).
//! Objects and arrays are left to the tools, which compose them from their members' examples.
//! Hand-written: there is no crate for "a valid value of this OpenAPI schema" worth its weight.

use serde_json::{Value, json};
use utoipa::Number;
use utoipa::openapi::{
    Object, RefOr, Schema, SchemaFormat, Type,
    schema::{ArrayItems, SchemaType},
};

/// The int64 patterns the schema module writes (64-bit integers as strings).
const INTEGER_PATTERNS: [&str; 2] = ["^-?[0-9]+$", "^[0-9]+$"];

/// Adds an example to `schema` (to an array's items, to a oneOf's first non-null branch)
/// unless it has one; `name` (the field's) is the text of a plain string.
pub(crate) fn fill(schema: &mut RefOr<Schema>, name: Option<&str>) {
    let RefOr::T(schema) = schema else { return };
    fill_schema(schema, name);
}

fn fill_schema(schema: &mut Schema, name: Option<&str>) {
    match schema {
        Schema::Object(o) => {
            if o.examples.is_empty()
                && o.example.is_none()
                && let Some(e) = derive(o, name)
            {
                o.examples = vec![e];
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(item) = &mut a.items {
                fill(item, name);
            }
        }
        Schema::OneOf(o) => {
            if !o.examples.is_empty() {
                return;
            }
            if let Some(RefOr::T(first)) = o.items.first_mut() {
                fill_schema(first, name);
            }
        }
        _ => {}
    }
}

/// The main (non-null) type of a schema.
fn main_type(t: &SchemaType) -> Option<Type> {
    match t {
        SchemaType::Type(t) => Some(t.clone()),
        // `[string, integer]` (64-bit integers on input): the string form, as written.
        SchemaType::Array(ts) => ts
            .iter()
            .find(|t| **t == Type::String)
            .or_else(|| ts.iter().find(|t| **t != Type::Null))
            .cloned(),
        SchemaType::AnyValue => None,
    }
}

fn as_f64(n: &Number) -> f64 {
    match n {
        Number::Int(i) => *i as f64,
        Number::UInt(u) => *u as f64,
        Number::Float(f) => *f,
    }
}

/// A number within the schema's bounds, `preferred` when it is.
fn bounded(o: &Object, preferred: f64, step: f64) -> f64 {
    let mut n = preferred;
    if let Some(min) = o.minimum.as_ref().map(as_f64) {
        n = n.max(min);
    }
    if let Some(min) = o.exclusive_minimum.as_ref().map(as_f64)
        && n <= min
    {
        n = min + step;
    }
    if let Some(max) = o.maximum.as_ref().map(as_f64) {
        n = n.min(max);
    }
    if let Some(max) = o.exclusive_maximum.as_ref().map(as_f64)
        && n >= max
    {
        n = max - step;
    }
    n
}

fn derive(o: &Object, name: Option<&str>) -> Option<Value> {
    if let Some(values) = &o.enum_values {
        return values.first().cloned();
    }
    match main_type(&o.schema_type)? {
        Type::Integer => Some(json!(bounded(o, 1.0, 1.0) as i64)),
        Type::Number => {
            let n = bounded(o, 1.5, 0.5);
            Some(if n.fract() == 0.0 {
                json!(n as i64)
            } else {
                json!(n)
            })
        }
        Type::Boolean => Some(json!(true)),
        Type::String => string(o, name).map(Value::String),
        _ => None,
    }
}

fn string(o: &Object, name: Option<&str>) -> Option<String> {
    if let Some(pattern) = &o.pattern {
        return INTEGER_PATTERNS
            .contains(&pattern.as_str())
            .then(|| "1".to_owned());
    }
    // By the format's name: utoipa knows some formats only under features this crate does
    // not enable (`uuid`, `uri`), which then come as custom ones.
    let format = match &o.format {
        Some(SchemaFormat::KnownFormat(f)) => serde_json::to_value(f)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
        Some(SchemaFormat::Custom(f)) => Some(f.clone()),
        None => None,
    };
    let formatted = match format.as_deref() {
        Some("date-time") => Some("2024-01-15T09:30:00Z"),
        Some("date") => Some("2024-01-15"),
        Some("time") => Some("09:30:00Z"),
        Some("uuid") => Some("3fa85f64-5717-4562-b3fc-2c963f66afa6"),
        Some("email" | "idn-email") => Some("user@example.com"),
        Some("uri" | "iri" | "uri-reference" | "iri-reference" | "url") => {
            Some("https://example.com/")
        }
        Some("hostname" | "idn-hostname") => Some("example.com"),
        Some("ipv4") => Some("192.0.2.1"),
        Some("ipv6") => Some("2001:db8::1"),
        // "hello", base64-encoded.
        Some("byte") => Some("aGVsbG8="),
        Some("int32" | "int64" | "uint64") => Some("1"),
        Some("binary") => return None,
        _ => None,
    };
    if let Some(text) = formatted {
        return Some(text.to_owned());
    }
    // A plain string: the field's name, fitted to the length bounds.
    let mut text: String = name.unwrap_or("text").to_owned();
    let min = o.min_length.unwrap_or(0);
    let max = o.max_length.unwrap_or(usize::MAX);
    let len = text.chars().count();
    if len < min {
        text.extend(std::iter::repeat_n('x', min - len));
    }
    if text.chars().count() > max {
        text = text.chars().take(max).collect();
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::ObjectBuilder;

    fn example(builder: ObjectBuilder, name: Option<&str>) -> Value {
        let mut schema: RefOr<Schema> = builder.into();
        fill(&mut schema, name);
        match serde_json::to_value(&schema) {
            Ok(v) => v["examples"][0].clone(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn numbers_respect_their_bounds() {
        let int = || ObjectBuilder::new().schema_type(Type::Integer);
        assert_eq!(example(int(), None), json!(1));
        assert_eq!(example(int().minimum(Some(5)), None), json!(5));
        assert_eq!(example(int().exclusive_minimum(Some(1)), None), json!(2));
        assert_eq!(example(int().maximum(Some(0)), None), json!(0));
    }

    #[test]
    fn strings_follow_their_format_or_fit_their_lengths() {
        let s = || ObjectBuilder::new().schema_type(Type::String);
        let fmt = |f: &str| s().format(Some(SchemaFormat::Custom(f.to_owned())));
        assert_eq!(
            example(fmt("uuid"), None),
            json!("3fa85f64-5717-4562-b3fc-2c963f66afa6")
        );
        assert_eq!(example(fmt("email"), None), json!("user@example.com"));
        assert_eq!(
            example(
                s().format(Some(SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime
                ))),
                None
            ),
            json!("2024-01-15T09:30:00Z")
        );
        assert_eq!(
            example(s().min_length(Some(8)), Some("name")),
            json!("namexxxx")
        );
        assert_eq!(example(s().max_length(Some(2)), Some("name")), json!("na"));
        assert_eq!(example(s().pattern(Some("^[a-z]{3}$")), None), Value::Null);
    }
}
