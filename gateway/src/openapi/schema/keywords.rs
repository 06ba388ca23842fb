//! A field's `buf.validate` rules as JSON Schema keywords, so that the document states what the
//! gateway enforces ([`crate::constraints`]): numeric bounds (`minimum`, `exclusiveMinimum`,
//! `maximum`, `exclusiveMaximum`), `const` and `in` (`enum`), string lengths, `pattern`,
//! `prefix`/`suffix`/`contains` (as patterns), formats (`email`, `uri`, `uuid`, `hostname`,
//! `ipv4`, `ipv6`), repeated `minItems`/`maxItems`/`uniqueItems` and map
//! `minProperties`/`maxProperties`. Rules JSON Schema cannot say (`not_in`, CEL, byte lengths,
//! well-known types) are enforced but not stated.
//!
//! protovalidate patterns are RE2; JSON Schema's are ECMA-262. The one RE2 spelling the two
//! read differently that a portable pattern needs, `\x{HHHH}` code points, is rewritten as
//! `\uHHHH` ([`ecma_pattern`]); other RE2-only syntax is passed on as written.

use prost_reflect::{FieldDescriptor, Value};
use utoipa::{
    Number,
    openapi::{Array, Object, SchemaFormat},
};

use crate::constraints::rules::{self, FieldRules};

/// Whether the field's rules say it must be set (`required: true`).
pub(crate) fn required(field: &FieldDescriptor) -> bool {
    rules::of_field(field).is_some_and(|r| r.required())
}

/// Adds the rules on one value of `field` (an element, for a repeated field; a value, for a
/// map) to `object`.
pub(crate) fn value(object: &mut Object, field: &FieldDescriptor) {
    let Some(rules) = rules::of_field(field) else {
        return;
    };
    let rules = if field.is_list() {
        match rules.typed() {
            Some((name, repeated)) if name == "repeated" => match repeated.nested("items") {
                Some(items) => items,
                None => return,
            },
            _ => return,
        }
    } else if field.is_map() {
        match rules.typed() {
            Some((name, map)) if name == "map" => match map.nested("values") {
                Some(values) => values,
                None => return,
            },
            _ => return,
        }
    } else {
        rules
    };
    apply(object, &rules);
}

/// Of proto3 JSON's special float spellings, those a float field's rules accept (protovalidate:
/// NaN meets no bound, an infinity only the bounds on its own side's opposite), or `None` when
/// the field states no float rules.
pub(crate) fn float_specials(field: &FieldDescriptor) -> Option<Vec<&'static str>> {
    let rules = rules::of_field(field)?;
    let rules = if field.is_list() {
        let (name, repeated) = rules.typed()?;
        if name != "repeated" {
            return None;
        }
        repeated.nested("items")?
    } else {
        rules
    };
    let (kind, typed) = rules.typed()?;
    if kind != "float" && kind != "double" {
        return None;
    }
    if typed.get("finite").and_then(|v| v.as_bool()) == Some(true)
        || typed.get("const").is_some()
        || typed.get("in").is_some()
    {
        return Some(Vec::new());
    }
    let lower = typed.get("gt").is_some() || typed.get("gte").is_some();
    let upper = typed.get("lt").is_some() || typed.get("lte").is_some();
    let mut out = Vec::new();
    if !lower && !upper {
        out.push("NaN");
    }
    if !upper {
        out.push("Infinity");
    }
    if !lower {
        out.push("-Infinity");
    }
    Some(out)
}

/// Adds `repeated` rules (`min_items`, `max_items`, `unique`) to a repeated field's array.
pub(crate) fn array(array: &mut Array, field: &FieldDescriptor) {
    let Some(repeated) = typed(field, "repeated") else {
        return;
    };
    array.min_items = repeated
        .get("min_items")
        .as_ref()
        .and_then(size)
        .or(array.min_items);
    array.max_items = repeated
        .get("max_items")
        .as_ref()
        .and_then(size)
        .or(array.max_items);
    if repeated.get("unique").and_then(|v| v.as_bool()) == Some(true) {
        array.unique_items = true;
    }
}

/// Adds `map` rules (`min_pairs`, `max_pairs`) to a map field's object.
pub(crate) fn map(object: &mut Object, field: &FieldDescriptor) {
    let Some(map) = typed(field, "map") else {
        return;
    };
    object.min_properties = map
        .get("min_pairs")
        .as_ref()
        .and_then(size)
        .or(object.min_properties);
    object.max_properties = map
        .get("max_pairs")
        .as_ref()
        .and_then(size)
        .or(object.max_properties);
}

/// The field's rules of the type `kind` (`repeated`, `map`), when it states those.
fn typed(field: &FieldDescriptor, kind: &str) -> Option<rules::TypeRules> {
    let (name, rules) = rules::of_field(field)?.typed()?;
    (name == kind).then_some(rules)
}

fn apply(o: &mut Object, rules: &FieldRules) {
    let Some((kind, typed)) = rules.typed() else {
        return;
    };
    let number = |name: &str| typed.get(name).as_ref().and_then(number);
    match kind.as_str() {
        "int32" | "int64" | "uint32" | "uint64" | "sint32" | "sint64" | "fixed32" | "fixed64"
        | "sfixed32" | "sfixed64" | "float" | "double" => {
            o.minimum = number("gte").or(o.minimum.take());
            o.exclusive_minimum = number("gt").or(o.exclusive_minimum.take());
            o.maximum = number("lte").or(o.maximum.take());
            o.exclusive_maximum = number("lt").or(o.exclusive_maximum.take());
            if let Some(c) = typed.get("const").as_ref().and_then(json) {
                o.enum_values = Some(vec![c]);
            } else if let Some(Value::List(items)) = typed.get("in") {
                o.enum_values = Some(items.iter().filter_map(json).collect());
            }
        }
        "string" => {
            let len = |name: &str| typed.get(name).as_ref().and_then(size);
            o.min_length = len("min_len").or(len("len")).or(o.min_length);
            o.max_length = len("max_len").or(len("len")).or(o.max_length);
            let text = |name: &str| typed.get(name).and_then(|v| v.as_str().map(str::to_owned));
            // JSON Schema has one `pattern`: the rule's own, else the first of prefix, suffix,
            // contains (each enforced all the same).
            o.pattern = text("pattern")
                .map(|p| ecma_pattern(&p))
                .or_else(|| text("prefix").map(|p| format!("^{}", escape(&p))))
                .or_else(|| text("suffix").map(|s| format!("{}$", escape(&s))))
                .or_else(|| text("contains").map(|c| escape(&c)))
                .or(o.pattern.take());
            if let Some(c) = text("const") {
                o.enum_values = Some(vec![c.into()]);
            } else if let Some(Value::List(items)) = typed.get("in") {
                o.enum_values = Some(items.iter().filter_map(json).collect());
            }
            let flag = |name: &str| typed.get(name).and_then(|v| v.as_bool()) == Some(true);
            // JSON Schema's format names for the protovalidate rules of the same meaning.
            let format = [
                ("email", "email"),
                ("uri", "uri"),
                ("uri_ref", "uri-reference"),
                ("uuid", "uuid"),
                ("hostname", "hostname"),
                ("ipv4", "ipv4"),
                ("ipv6", "ipv6"),
            ]
            .into_iter()
            .find(|(rule, _)| flag(rule));
            if let Some((_, format)) = format {
                o.format = Some(SchemaFormat::Custom(format.to_owned()));
            }
        }
        "enum" => {
            if let Some(Value::List(items)) = typed.get("in") {
                o.enum_values = Some(items.iter().filter_map(json).collect());
            }
        }
        _ => {}
    }
}

/// A numeric rule value as a JSON Schema number.
fn number(value: &Value) -> Option<Number> {
    Some(match value {
        Value::I32(n) => Number::Int(isize::try_from(*n).ok()?),
        Value::I64(n) => match isize::try_from(*n) {
            Ok(n) => Number::Int(n),
            // Only on targets narrower than 64 bits; a float is the closest JSON number.
            Err(_) => Number::Float(*n as f64),
        },
        Value::U32(n) => Number::UInt(usize::try_from(*n).ok()?),
        Value::U64(n) => match usize::try_from(*n) {
            Ok(n) => Number::UInt(n),
            Err(_) => Number::Float(*n as f64),
        },
        Value::F32(n) => Number::Float(f64::from(*n)),
        Value::F64(n) => Number::Float(*n),
        _ => return None,
    })
}

/// A rule value (`const`, an `in` item) as JSON.
fn json(value: &Value) -> Option<serde_json::Value> {
    Some(match value {
        Value::I32(n) => (*n).into(),
        Value::I64(n) => (*n).into(),
        Value::U32(n) => (*n).into(),
        Value::U64(n) => (*n).into(),
        Value::F32(n) => f64::from(*n).into(),
        Value::F64(n) => (*n).into(),
        Value::String(s) => s.clone().into(),
        Value::EnumNumber(n) => (*n).into(),
        _ => return None,
    })
}

fn size(value: &Value) -> Option<usize> {
    usize::try_from(value.as_u64()?).ok()
}

/// `text` as an ECMA-262 regular expression matching itself literally.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An RE2 pattern in ECMA-262 spelling: `\x{HHHH}` becomes `\uHHHH` (a surrogate pair above
/// U+FFFF), which ECMA-262 without the `u` flag and Python's `re` also read; the rest is kept.
pub(crate) fn ecma_pattern(re2: &str) -> String {
    let mut out = String::with_capacity(re2.len());
    let mut rest = re2;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let code = tail
            .strip_prefix("\\x{")
            .and_then(|t| t.split_once('}'))
            .and_then(|(hex, after)| Some((u32::from_str_radix(hex, 16).ok()?, after)));
        match code {
            Some((code, after)) => {
                let mut units = [0_u16; 2];
                match char::from_u32(code) {
                    Some(c) => {
                        for unit in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{unit:04X}"));
                        }
                    }
                    // A surrogate code point, which no Rust string holds: kept as written.
                    None => out.push_str(&tail[..tail.len() - after.len()]),
                }
                rest = after;
            }
            None => {
                // Any other escape: the backslash and the character it escapes, as written.
                let len = tail[1..].chars().next().map_or(1, |c| 1 + c.len_utf8());
                out.push_str(&tail[..len]);
                rest = &tail[len..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re2_code_points_become_ecma_escapes() {
        assert_eq!(
            ecma_pattern(r"[^\x{9}-\x{D}\x{20}\x{3000}]"),
            r"[^\u0009-\u000D\u0020\u3000]"
        );
        assert_eq!(ecma_pattern(r"\x{1F600}"), r"\uD83D\uDE00");
        assert_eq!(ecma_pattern(r"^a\.b\\x{41}$"), r"^a\.b\\x{41}$");
        assert_eq!(ecma_pattern(r"\d+\x{"), r"\d+\x{");
    }

    #[test]
    fn literal_text_is_escaped() {
        assert_eq!(escape("a.b(c)"), r"a\.b\(c\)");
    }
}
