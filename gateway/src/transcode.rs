//! Transcoding: an HTTP request into the method's request message, and the response message
//! into JSON bytes.
//!
//! The request message is filled in the order grpc-gateway uses: the body first (the whole
//! message for `body: "*"`, one field for `body: "field"`), then the path variables over it,
//! then the query parameters, which may only set fields that neither the path nor the body
//! set. Every parse failure names the parameter or body field, so a client can fix it.

mod decode;
mod response;
mod unique_keys;
mod value;

use std::{collections::HashSet, sync::Arc};

use http::HeaderValue;
use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, Value};

pub use decode::{DecodeError, path_segment};
pub use response::to_json;

use crate::{
    constraints::Constraints,
    error::Error,
    rules::{Binding, BodyRule},
};

/// The request-side settings, fixed at start.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// Query parameters dropped without a look (cache busters such as `_`).
    pub ignored_query_params: HashSet<String>,
    /// How JSON bodies are read: unknown fields are an error.
    pub deserialize: DeserializeOptions,
    /// The field rules a request message must meet (none by default).
    pub constraints: Arc<Constraints>,
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            ignored_query_params: HashSet::new(),
            deserialize: DeserializeOptions::new().deny_unknown_fields(true),
            constraints: Arc::default(),
        }
    }
}

/// Checks a body's `Content-Type`: JSON (`application/json`, any `+json` type) or absent.
///
/// # Errors
/// [`Error::UnsupportedMediaType`] for anything else.
pub fn check_content_type(content_type: Option<&HeaderValue>) -> Result<(), Error> {
    let Some(value) = content_type else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    let is_json = essence.eq_ignore_ascii_case("application/json")
        || essence.len() > 5 && essence[essence.len() - 5..].eq_ignore_ascii_case("+json");
    if is_json {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(text.to_owned()))
    }
}

/// Builds the request message of `binding` from the captured path values, the raw query
/// string and the body bytes (empty when there is none), then checks it against the field
/// rules of `options`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the parameter or field that does not fit or breaks a rule.
pub fn request_message(
    binding: &Binding,
    captures: Vec<String>,
    query: Option<&str>,
    body: &[u8],
    options: &RequestOptions,
) -> Result<DynamicMessage, Error> {
    let input = binding.method.input();
    let body_present = !body.iter().all(u8::is_ascii_whitespace);
    let mut message = match &binding.body {
        BodyRule::Whole if body_present => deserialize_json(input, body, &options.deserialize)?,
        BodyRule::Field(field) if body_present => {
            let mut message = DynamicMessage::new(input.clone());
            let value = field_from_json(&input, field, body, &options.deserialize)?;
            set(&mut message, std::slice::from_ref(field), value)?;
            message
        }
        _ => DynamicMessage::new(input),
    };

    for ((chain, raw), var) in binding
        .path_fields
        .iter()
        .zip(captures)
        .zip(binding.template.variables())
    {
        let leaf = leaf(chain)?;
        let value = value::parse(leaf, &raw).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "invalid value {raw:?} for path parameter {:?}: expected {}",
                var.dotted(),
                value::expected(leaf)
            ))
        })?;
        set(&mut message, chain, value)?;
    }

    if let Some(query) = query {
        apply_query(&mut message, binding, query, options)?;
    }
    options
        .constraints
        .check(&message)
        .map_err(|v| Error::InvalidArgument(v.to_string()))?;
    Ok(message)
}

fn apply_query(
    message: &mut DynamicMessage,
    binding: &Binding,
    query: &str,
    options: &RequestOptions,
) -> Result<(), Error> {
    let input = binding.method.input();
    // Singular fields set so far, to reject a repeated key.
    let mut seen: Vec<Vec<FieldDescriptor>> = Vec::new();
    for (raw_key, raw_value) in decode::query_pairs(query) {
        let key = decode::query_component(raw_key).map_err(|e| {
            Error::InvalidArgument(format!("{e} in query parameter name {raw_key:?}"))
        })?;
        if options.ignored_query_params.contains(key.as_ref()) {
            continue;
        }
        let text = decode::query_component(raw_value).map_err(|e| {
            Error::InvalidArgument(format!("{e} in the value of query parameter {key:?}"))
        })?;

        let unknown = || Error::InvalidArgument(format!("unknown query parameter {key:?}"));
        let mut chain = Vec::new();
        let mut current = input.clone();
        for (i, part) in key.split('.').enumerate() {
            if i > 0 {
                // Only singular message fields can be walked through.
                let parent: &FieldDescriptor = chain.last().ok_or_else(unknown)?;
                match parent.kind() {
                    Kind::Message(m)
                        if !parent.is_list()
                            && !parent.is_map()
                            && !value::message_has_text_form(&m) =>
                    {
                        current = m;
                    }
                    _ => return Err(unknown()),
                }
            }
            let field = current
                .get_field_by_name(part)
                .or_else(|| current.get_field_by_json_name(part))
                .ok_or_else(unknown)?;
            chain.push(field);
        }

        let bound_elsewhere = match &binding.body {
            BodyRule::Whole => Some("the request body"),
            BodyRule::Field(body) if chain[0] == *body => Some("the request body"),
            _ => binding
                .path_fields
                .iter()
                .any(|path| is_prefix(path, &chain) || is_prefix(&chain, path))
                .then_some("the path"),
        };
        if let Some(by) = bound_elsewhere {
            return Err(Error::InvalidArgument(format!(
                "query parameter {key:?} sets a field already set by {by}"
            )));
        }

        let leaf = leaf(&chain)?;
        let settable = match leaf.kind() {
            Kind::Message(m) => value::message_has_text_form(&m),
            _ => true,
        };
        if leaf.is_map() || !settable {
            return Err(Error::InvalidArgument(format!(
                "query parameter {key:?} names a field of type {} that cannot be set from a query string; send it in the body",
                value::expected(leaf)
            )));
        }
        if !leaf.is_list() {
            if seen.contains(&chain) {
                return Err(Error::InvalidArgument(format!(
                    "query parameter {key:?} is repeated, but its field is not a repeated field"
                )));
            }
            seen.push(chain.clone());
        }
        let value = value::parse(leaf, &text).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "invalid value {text:?} for query parameter {key:?}: expected {}",
                value::expected(leaf)
            ))
        })?;
        set(message, &chain, value)?;
    }
    Ok(())
}

fn is_prefix(prefix: &[FieldDescriptor], of: &[FieldDescriptor]) -> bool {
    prefix.len() <= of.len() && prefix.iter().zip(of).all(|(a, b)| a == b)
}

fn leaf(chain: &[FieldDescriptor]) -> Result<&FieldDescriptor, Error> {
    chain
        .last()
        .ok_or_else(|| Error::Internal("empty field path".to_owned()))
}

/// Sets the field at the end of `chain`, creating the parent messages; a repeated leaf gets
/// `value` appended.
fn set(message: &mut DynamicMessage, chain: &[FieldDescriptor], value: Value) -> Result<(), Error> {
    let Some((leaf, parents)) = chain.split_last() else {
        return Err(Error::Internal("empty field path".to_owned()));
    };
    let mut current = message;
    for field in parents {
        current = current
            .get_field_mut(field)
            .as_message_mut()
            .ok_or_else(|| {
                Error::Internal(format!("field {} is not a message", field.full_name()))
            })?;
    }
    let mismatch = |e| Error::Internal(format!("setting {}: {e}", leaf.full_name()));
    if leaf.is_list() && !matches!(value, Value::List(_)) {
        match current.get_field_mut(leaf) {
            Value::List(items) => items.push(value),
            _ => {
                return Err(Error::Internal(format!(
                    "{} is not a list",
                    leaf.full_name()
                )));
            }
        }
        Ok(())
    } else {
        current
            .try_set_field(leaf, value)
            .map_err(|e| mismatch(e.to_string()))
    }
}

fn deserialize_json(
    desc: prost_reflect::MessageDescriptor,
    body: &[u8],
    options: &DeserializeOptions,
) -> Result<DynamicMessage, Error> {
    let invalid = |e: serde_json::Error| Error::InvalidArgument(format!("invalid JSON body: {e}"));
    let mut de = serde_json::Deserializer::from_slice(body);
    let message =
        DynamicMessage::deserialize_with_options(desc, &mut de, options).map_err(invalid)?;
    de.end().map_err(invalid)?;
    unique_keys::check(body).map_err(invalid)?;
    Ok(message)
}

/// Reads a `body: "field"` body: a message field directly, any other field (repeated, map,
/// scalar) through a one-field wrapper object, which keeps prost-reflect's JSON rules for it.
fn field_from_json(
    input: &prost_reflect::MessageDescriptor,
    field: &FieldDescriptor,
    body: &[u8],
    options: &DeserializeOptions,
) -> Result<Value, Error> {
    if let Kind::Message(m) = field.kind()
        && !field.is_list()
        && !field.is_map()
    {
        return deserialize_json(m, body, options).map(Value::Message);
    }
    let mut wrapped = Vec::with_capacity(body.len() + field.name().len() + 5);
    wrapped.extend_from_slice(b"{\"");
    wrapped.extend_from_slice(field.name().as_bytes());
    wrapped.extend_from_slice(b"\":");
    wrapped.extend_from_slice(body);
    wrapped.extend_from_slice(b"}");
    let mut message = deserialize_json(input.clone(), &wrapped, options)?;
    Ok(message
        .take_field(field)
        .unwrap_or_else(|| Value::default_value_for_field(field)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_accepted() {
        for ok in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("Application/JSON"),
            Some("application/merge-patch+json"),
        ] {
            let value = ok.map(HeaderValue::from_static);
            assert!(check_content_type(value.as_ref()).is_ok(), "{ok:?}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "json"] {
            let value = HeaderValue::from_static(bad);
            assert!(check_content_type(Some(&value)).is_err(), "{bad}");
        }
    }
}
