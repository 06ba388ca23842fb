//! How deeply a message nests, checked against a bound before anything recursive walks it.
//!
//! Every reader and writer of messages the gateway leans on recurses once per nested message:
//! prost's encoder, prost-reflect's JSON serializer, protovalidate's evaluator, and dropping
//! the message itself. Left unbounded, a recursive type (`message Node { Node c = 1; }`) lets
//! a client build a message thousands of levels deep from a short query string, and one
//! request overflows a worker's stack, which aborts the whole process. protobuf's decoders
//! stop at 100 levels ([`crate::limits::MAX_MESSAGE_DEPTH`]); the gateway holds requests and
//! the responses it writes to the same bound.
//!
//! The walk follows `google.protobuf.Any` payloads of a type the pool knows, as prost-reflect's
//! serializer does: each payload is decoded afresh there, with a fresh recursion budget, so an
//! `Any` holding an `Any` holding ... would otherwise nest without any bound at all. The walk
//! itself recurses at most `limit + 1` times.

use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value};

/// Where a message nests past the bound: the path of fields to the first message too deep
/// (`c.c.c`, `items[0].child`), payloads of `Any` inline as their JSON form has them (each
/// payload counts as a level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// The dotted path, outermost field first.
    pub path: String,
}

/// Checks that no message in `message` lies more than `limit` levels below it (its direct
/// message fields are level 1).
///
/// # Errors
/// [`TooDeep`] naming the path to the first message past `limit`.
pub fn check(message: &DynamicMessage, limit: usize) -> Result<(), TooDeep> {
    let mut reversed = Vec::new();
    if walk(message, limit, &mut reversed) {
        return Ok(());
    }
    reversed.reverse();
    Err(TooDeep {
        path: join(&reversed),
    })
}

/// Whether `message` fits in `budget` more levels; when it does not, the path segments to the
/// offending message are pushed innermost first.
fn walk(message: &DynamicMessage, budget: usize, path: &mut Vec<String>) -> bool {
    if let Some(payload) = any_payload(message) {
        // The payload is written where the `Any` stands (no field name of its own in the
        // path), but it is one more level of the writer's recursion: an `Any` of an `Any`...
        return budget > 0 && walk(&payload, budget - 1, path);
    }
    let fields = message
        .fields()
        .map(|(field, value)| (field.name().to_owned(), value))
        .chain(
            message
                .extensions()
                .map(|(ext, value)| (format!("[{}]", ext.full_name()), value)),
        );
    for (name, value) in fields {
        let inner: Box<dyn Iterator<Item = (Option<String>, &DynamicMessage)>> =
            match value {
                Value::Message(m) => Box::new(std::iter::once((None, m))),
                Value::List(items) => Box::new(
                    items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.as_message().map(|m| (Some(format!("[{i}]")), m))),
                ),
                Value::Map(entries) => Box::new(entries.iter().filter_map(|(k, v)| {
                    v.as_message().map(|m| (Some(format!("[{}]", key(k))), m))
                })),
                _ => continue,
            };
        for (index, nested) in inner {
            let fits = budget > 0 && walk(nested, budget - 1, path);
            if !fits {
                path.push(format!("{name}{}", index.unwrap_or_default()));
                return false;
            }
        }
    }
    true
}

/// The payload of an `Any` whose type the message's pool knows; `None` for any other message,
/// or a payload that does not decode (the serializer then reports that itself).
fn any_payload(message: &DynamicMessage) -> Option<DynamicMessage> {
    let descriptor = message.descriptor();
    if descriptor.full_name() != "google.protobuf.Any" {
        return None;
    }
    let type_url = message.get_field_by_number(1)?;
    let name = type_url.as_str()?.rsplit('/').next()?;
    let payload = descriptor.parent_pool().get_message_by_name(name)?;
    let value = message.get_field_by_number(2)?;
    DynamicMessage::decode(payload, value.as_bytes()?.as_ref()).ok()
}

fn key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(v) => v.to_string(),
        MapKey::I32(v) => v.to_string(),
        MapKey::I64(v) => v.to_string(),
        MapKey::U32(v) => v.to_string(),
        MapKey::U64(v) => v.to_string(),
        MapKey::String(s) => format!("{s:?}"),
    }
}

fn join(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_reflect::DescriptorPool;

    use super::*;

    /// An `Any` holding an `Any` ... `levels` times, around a `StringValue`.
    fn nested_any(levels: usize) -> prost_types::Any {
        let mut any = prost_types::Any {
            type_url: "type.googleapis.com/google.protobuf.StringValue".into(),
            value: "x".to_owned().encode_to_vec(),
        };
        for _ in 0..levels {
            any = prost_types::Any {
                type_url: "type.googleapis.com/google.protobuf.Any".into(),
                value: any.encode_to_vec(),
            };
        }
        any
    }

    fn decoded(levels: usize) -> DynamicMessage {
        let pool = crate::descriptors::with_standard_types(DescriptorPool::new());
        let Some(desc) = pool.get_message_by_name("google.protobuf.Any") else {
            panic!("Any is a standard type");
        };
        match DynamicMessage::decode(desc, nested_any(levels).encode_to_vec().as_slice()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn any_payloads_count_as_levels_however_many_the_decoder_allowed() {
        assert!(check(&decoded(5), 10).is_ok());
        assert!(check(&decoded(11), 10).is_err());
        // prost decodes the outer `Any` alone (its payload is bytes); the walk stops at the
        // bound instead of following 5,000 payloads.
        assert!(check(&decoded(5000), 100).is_err());
    }
}
