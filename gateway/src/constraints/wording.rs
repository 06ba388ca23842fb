//! The description of a broken `buf.validate` rule, as a client reads it.
//!
//! protovalidate's own messages ("value must be greater than or equal to 0") say neither the
//! value sent nor, for lengths, what was counted. The bounds and lengths most APIs use are
//! worded here with both (`must not be negative (got -1)`, `must be at most 200 characters
//! (got 201)`), the wording this project's clients already read; every other rule keeps the
//! crate's message. Hand-written because it is wording, not validation: the crate decides
//! what is broken.

use prost_protovalidate::Violation;
use prost_reflect::Value;

/// What `violation` says is wrong with the field's value. A rule without a message of its own
/// (the crate gives message-level CEL rules and string formats none) is named by its id.
pub fn describe(violation: &Violation) -> String {
    if let Some(text) = worded(violation) {
        return text;
    }
    let message = violation.message();
    if message.is_empty() {
        return format!("breaks the rule {:?}", violation.rule_id());
    }
    // "value must be greater than or equal to 13 and less than 130" reads as the field's own.
    let message = message.strip_prefix("value ").unwrap_or(message);
    match violation.field_value().and_then(number) {
        Some(got) => format!("{message} (got {got})"),
        None => message.to_owned(),
    }
}

fn worded(violation: &Violation) -> Option<String> {
    if let Some(format) = violation
        .rule_id()
        .strip_prefix("string.")
        .map(|f| f.strip_suffix("_empty").unwrap_or(f))
        .and_then(format_name)
    {
        return Some(format!("must be {format}"));
    }
    let (_, rule) = violation.rule_id().rsplit_once('.')?;
    let bound = violation.rule_value();
    let got = violation.field_value();
    Some(match rule {
        "gte" | "gt" | "lte" | "lt" => {
            let bound = number(bound?)?;
            let got = number(got?)?;
            match (rule, bound.as_str()) {
                ("gte", "0") => format!("must not be negative (got {got})"),
                ("gt", "0") => format!("must be positive (got {got})"),
                ("gte", _) => format!("must be at least {bound} (got {got})"),
                ("gt", _) => format!("must be greater than {bound} (got {got})"),
                ("lte", _) => format!("must be at most {bound} (got {got})"),
                _ => format!("must be less than {bound} (got {got})"),
            }
        }
        "min_len" | "max_len" if violation.rule_id().starts_with("string.") => {
            let bound = bound?.as_u64()?;
            let chars = got?.as_str()?.chars().count();
            match rule {
                "min_len" if bound == 1 => "must not be empty".to_owned(),
                "min_len" => format!("must be at least {bound} characters (got {chars})"),
                _ => format!("must be at most {bound} characters (got {chars})"),
            }
        }
        "max_bytes" if violation.rule_id().starts_with("string.") => {
            let bound = bound?.as_u64()?;
            let bytes = got?.as_str()?.len();
            format!("must be at most {bound} bytes of UTF-8 (got {bytes})")
        }
        _ => return None,
    })
}

/// What a string-format rule asks for, by the name in its rule id.
fn format_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "email" => "an email address",
        "hostname" => "a host name",
        "ip" => "an IP address",
        "ipv4" => "an IPv4 address",
        "ipv6" => "an IPv6 address",
        "uri" => "an absolute URI",
        "uri_ref" => "a URI reference",
        "uuid" => "a UUID",
        "tuuid" => "a UUID without dashes",
        "address" => "a host name or IP address",
        "ulid" => "a ULID",
        "host_and_port" => "a host and port",
        _ => return None,
    })
}

/// An integer or float value as written in JSON.
fn number(value: &Value) -> Option<String> {
    Some(match value {
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        _ => return None,
    })
}
