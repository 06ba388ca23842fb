//! Transcoding: an HTTP request into the method's request message, and the response message
//! into JSON bytes.
//!
//! The request message is filled in the order grpc-gateway uses: the body first (the whole
//! message for `body: "*"`, one field for `body: "field"`), then the path variables over it,
//! then the query parameters, which may only set fields that neither the path nor the body
//! set. A body field that the path also binds must agree with it (Envoy's
//! `reject_binding_body_field_collisions`): a silent winner would hide a client's mistake.
//! For the same reason, two members of one oneof set by a request (from any two of the body,
//! path and query) are refused, naming both, where protobuf would keep the last one.
//! Every parse failure names the parameter or body field, so a client can fix it.
//!
//! Every value proto3 JSON allows is read, including what the gateway itself writes (float
//! extremes in their shortest spelling, enum numbers the proto does not name), and Google's
//! system parameter `$alt` (`alt`) is read as such, never as a field ([`SystemParams`]).
//!
//! Messages nest at most 100 levels, protobuf's own limit ([`depth`]): a query or path field
//! path is bounded as it is read, a whole message before it is validated or encoded.

mod decode;
pub mod depth;
pub mod fields;
mod floats;
mod head;
pub mod http_body;
pub mod multipart;
pub(crate) mod nonfinite;
mod response;
pub mod status;
mod unique_keys;
mod value;
pub mod wire;

use std::{borrow::Cow, collections::HashSet, sync::Arc};

use http::HeaderValue;
use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, Value};

pub use decode::{DecodeError, has_encoded_slash, path_segment, reserved_path_segment};
pub use head::HeadCheck;
pub use response::{Output, ResponseError, decode, to_json, wire_to_json};

use crate::{
    constraints::Constraints,
    error::Error,
    json::JsonNames,
    limits::MAX_MESSAGE_DEPTH,
    rules::{Binding, BodyRule},
};

/// What to do with a name the request message does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Unknown {
    /// Answer 400 naming it (the default: a typo must not pass silently).
    #[default]
    Reject,
    /// Drop it, as grpc-gateway does.
    Ignore,
}

/// The request-side settings, fixed at start.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// Query parameters dropped without a look (cache busters such as `_`).
    pub ignored_query_params: HashSet<String>,
    /// Query parameters that name no field: rejected or ignored.
    pub unknown_query_params: Unknown,
    /// How JSON bodies are read ([`RequestOptions::unknown_fields`] sets whether unknown
    /// fields are an error).
    pub deserialize: DeserializeOptions,
    /// The field rules a request message must meet (none by default).
    pub constraints: Arc<Constraints>,
    /// How the field names of a rule violation's `google.rpc.BadRequest` are written.
    pub names: JsonNames,
    /// What refuses a request from its head alone, before its body is read (none by default).
    pub head_check: Option<HeadCheck>,
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            ignored_query_params: HashSet::new(),
            unknown_query_params: Unknown::Reject,
            deserialize: DeserializeOptions::new().deny_unknown_fields(true),
            constraints: Arc::default(),
            names: JsonNames::default(),
            head_check: None,
        }
    }
}

impl RequestOptions {
    /// Sets what unknown fields in JSON bodies do.
    #[must_use]
    pub fn unknown_fields(mut self, unknown: Unknown) -> Self {
        self.deserialize = self
            .deserialize
            .deny_unknown_fields(unknown == Unknown::Reject);
        self
    }
}

/// Google's system parameters (`$alt`, `fields`), read from the query string; never taken for
/// a request field, even one of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemParams {
    /// `$alt=json;enum-encoding=int`: enums in the response as numbers.
    pub enum_numbers: bool,
    /// `fields`: the partial response asked for ([`fields`]).
    pub fields: Option<String>,
}

/// Reads `fields` into `system`.
fn fields_param(value: &str, system: &mut SystemParams) -> Result<(), Error> {
    if system.fields.is_some() {
        return Err(Error::InvalidArgument(
            "the fields parameter is given twice".to_owned(),
        ));
    }
    system.fields = Some(value.to_owned());
    Ok(())
}

/// Reads the system parameters of a query string alone (for a stream, whose messages are read
/// later).
///
/// # Errors
/// An unsupported `$alt`.
pub fn system_params(query: Option<&str>) -> Result<SystemParams, Error> {
    let mut system = SystemParams::default();
    for (raw_key, raw_value) in decode::query_pairs(query.unwrap_or_default()) {
        let key = decode::query_component(raw_key).unwrap_or_default();
        if key == "$alt" || key == "alt" || key == "fields" {
            let value = decode::query_component(raw_value).map_err(|e| {
                Error::InvalidArgument(format!("{e} in the value of query parameter {key:?}"))
            })?;
            if key == "fields" {
                fields_param(&value, &mut system)?;
            } else {
                system_param(&value, &mut system)?;
            }
        }
    }
    Ok(system)
}

/// Checks a body's `Content-Type`. The body is read as JSON when the type is JSON
/// (`application/json`, any `+json` type, `application/x-ndjson` for a stream of messages),
/// absent or empty, or one that clients send for a
/// body they did not label: `application/x-www-form-urlencoded` (`curl -d`, read as JSON as
/// grpc-gateway does) and `text/plain` (`fetch` with a string body).
///
/// # Errors
/// [`Error::UnsupportedMediaType`] for anything else.
pub fn check_content_type(content_type: Option<&HeaderValue>) -> Result<(), Error> {
    let Some(value) = content_type else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    let accepted = essence.is_empty()
        || [
            "application/json",
            "application/x-ndjson",
            "application/x-www-form-urlencoded",
            "text/plain",
        ]
        .iter()
        .any(|t| essence.eq_ignore_ascii_case(t))
        || essence.len() > 5 && essence[essence.len() - 5..].eq_ignore_ascii_case("+json");
    if accepted {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(text.to_owned()))
    }
}

/// Builds the request message of `binding` from the captured path values, the raw query
/// string and the body bytes (empty when there is none), then checks it against the field
/// rules of `options`. Also returns the system parameters the query carried.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the parameter or field that does not fit or breaks a rule.
pub fn request_message(
    binding: &Binding,
    captures: Vec<String>,
    query: Option<&str>,
    body: &[u8],
    options: &RequestOptions,
) -> Result<(DynamicMessage, SystemParams), Error> {
    request_message_with(binding, captures, query, body, options, Rules::Check)
}

/// Whether [`request_message_with`] checks the field rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Check them (400 before the call).
    Check,
    /// Leave them to the backend: for a write sent without credentials, whose backend answers
    /// its authentication first (no information about the API to strangers).
    Defer,
}

/// [`request_message`], checking the field rules or not.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the parameter or field that does not fit or breaks a rule.
pub fn request_message_with(
    binding: &Binding,
    captures: Vec<String>,
    query: Option<&str>,
    body: &[u8],
    options: &RequestOptions,
    rules: Rules,
) -> Result<(DynamicMessage, SystemParams), Error> {
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
        if body_present
            && body_binds(&binding.body, chain)
            && let Some(from_body) = get_set(&message, chain)
            && from_body != value
        {
            return Err(Error::InvalidArgument(format!(
                "the body sets {:?} to {}, but the path parameter {:?} is {raw:?}; send the same \
                 value or leave it out of the body",
                dotted(chain),
                show(&from_body),
                var.dotted()
            )));
        }
        set(&mut message, chain, value)?;
    }

    let system = match query {
        Some(query) => apply_query(&mut message, binding, query, options)?,
        None => SystemParams::default(),
    };
    if body_present {
        infer_update_mask(&mut message, binding, body)?;
        // The JSON reader stops at 128 levels of JSON, a little past what protobuf decodes;
        // a query or path field path is bounded as it is read.
        depth::check(&message, MAX_MESSAGE_DEPTH).map_err(|e| {
            Error::InvalidArgument(format!(
                "field {:?} nests messages more than {MAX_MESSAGE_DEPTH} levels deep",
                e.path
            ))
        })?;
    }
    if rules == Rules::Check {
        options
            .constraints
            .check(&message)
            .map_err(|violations| Error::InvalidFields {
                violations,
                names: options.names,
            })?;
    }
    Ok((message, system))
}

/// A whole request message from a JSON document, read as a REST body is (the same unknown
/// field policy, float extremes, duplicate keys refused, at most 100 levels deep), for an RPC
/// protocol whose body is the message itself (Connect's `application/json`). A blank document
/// is the empty message.
///
/// # Errors
/// [`Error::InvalidArgument`] naming what does not parse.
pub fn message_from_json(
    desc: prost_reflect::MessageDescriptor,
    body: &[u8],
    options: &RequestOptions,
) -> Result<DynamicMessage, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(desc));
    }
    let message = deserialize_json(desc, body, &options.deserialize)?;
    depth::check(&message, MAX_MESSAGE_DEPTH).map_err(|e| {
        Error::InvalidArgument(format!(
            "field {:?} nests messages more than {MAX_MESSAGE_DEPTH} levels deep",
            e.path
        ))
    })?;
    Ok(message)
}

/// Checks `message` against the field rules of `options`: for a message filled after
/// [`request_message_with`] (from a form), whose rules were deferred until it was whole.
///
/// # Errors
/// [`Error::InvalidFields`] listing each violation.
pub fn check_rules(message: &DynamicMessage, options: &RequestOptions) -> Result<(), Error> {
    options
        .constraints
        .check(message)
        .map_err(|violations| Error::InvalidFields {
            violations,
            names: options.names,
        })
}

/// AIP-134's `update_mask`, filled from the body when the request does not set it: the paths
/// of the JSON keys of the resource in the body (nested objects give dotted paths), as
/// grpc-gateway infers it. Without it, a PATCH naming one field would clear all the others.
fn infer_update_mask(
    message: &mut DynamicMessage,
    binding: &Binding,
    body: &[u8],
) -> Result<(), Error> {
    let BodyRule::Field(field) = &binding.body else {
        return Ok(());
    };
    let Kind::Message(resource) = field.kind() else {
        return Ok(());
    };
    let input = binding.method.input();
    let Some(mask_field) = input.get_field_by_name("update_mask") else {
        return Ok(());
    };
    let Kind::Message(mask_type) = mask_field.kind() else {
        return Ok(());
    };
    if mask_type.full_name() != "google.protobuf.FieldMask"
        || mask_field.is_list()
        || message.has_field(&mask_field)
    {
        return Ok(());
    }
    let tree: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidArgument(format!("invalid JSON body: {e}")))?;
    let mut paths = Vec::new();
    mask_paths(&tree, &resource, "", &mut paths);
    message.set_field(
        &mask_field,
        Value::Message(value::field_mask(&mask_type, paths)),
    );
    Ok(())
}

/// The proto-name paths of the keys of `tree` (an object of `desc`), into `out`.
fn mask_paths(
    tree: &serde_json::Value,
    desc: &prost_reflect::MessageDescriptor,
    prefix: &str,
    out: &mut Vec<String>,
) {
    let serde_json::Value::Object(fields) = tree else {
        return;
    };
    for (key, item) in fields {
        let Some(field) = desc
            .get_field_by_name(key)
            .or_else(|| desc.get_field_by_json_name(key))
        else {
            continue;
        };
        let path = if prefix.is_empty() {
            field.name().to_owned()
        } else {
            format!("{prefix}.{}", field.name())
        };
        match field.kind() {
            // A nested message written as an object is masked field by field; well-known
            // types with a JSON form of their own, maps and lists are replaced whole.
            Kind::Message(nested)
                if item.is_object()
                    && !field.is_list()
                    && !field.is_map()
                    && !nested.full_name().starts_with("google.protobuf.") =>
            {
                if item.as_object().is_some_and(serde_json::Map::is_empty) {
                    out.push(path);
                } else {
                    mask_paths(item, &nested, &path, out);
                }
            }
            _ => out.push(path),
        }
    }
}

/// Whether the body rule puts the field at the start of `chain` in the body.
fn body_binds(body: &BodyRule, chain: &[FieldDescriptor]) -> bool {
    match body {
        BodyRule::None => false,
        BodyRule::Whole => true,
        BodyRule::Field(field) => chain.first() == Some(field),
    }
}

/// The value at the end of `chain`, when it (and every message on the way) is set.
fn get_set(message: &DynamicMessage, chain: &[FieldDescriptor]) -> Option<Value> {
    let (leaf, parents) = chain.split_last()?;
    let mut current = message;
    for field in parents {
        if !current.has_field(field) {
            return None;
        }
        match current.get_field(field) {
            Cow::Borrowed(Value::Message(inner)) => current = inner,
            _ => return None,
        }
    }
    current
        .has_field(leaf)
        .then(|| current.get_field(leaf).into_owned())
}

fn dotted(chain: &[FieldDescriptor]) -> String {
    chain
        .iter()
        .map(FieldDescriptor::name)
        .collect::<Vec<_>>()
        .join(".")
}

/// A scalar value as a client would write it, for error messages.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Bool(v) => v.to_string(),
        Value::I32(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::F32(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        Value::EnumNumber(v) => v.to_string(),
        other => format!("{other:?}"),
    }
}

/// Reads `$alt` / `alt` (Google's system parameter for the response format).
fn system_param(value: &str, system: &mut SystemParams) -> Result<(), Error> {
    let mut parts = value.split(';').map(str::trim);
    let format = parts.next().unwrap_or_default();
    if !format.eq_ignore_ascii_case("json") {
        return Err(Error::InvalidArgument(format!(
            "unsupported $alt value {value:?}: this gateway answers JSON (\"json\" or \
             \"json;enum-encoding=int\")"
        )));
    }
    for part in parts {
        match part.split_once('=') {
            Some((key, encoding)) if key.eq_ignore_ascii_case("enum-encoding") => {
                system.enum_numbers = match encoding {
                    "int" => true,
                    "string" => false,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "unsupported enum-encoding {encoding:?} in $alt: use int or string"
                        )));
                    }
                };
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unsupported $alt parameter {part:?}: only enum-encoding is known"
                )));
            }
        }
    }
    Ok(())
}

fn apply_query(
    message: &mut DynamicMessage,
    binding: &Binding,
    query: &str,
    options: &RequestOptions,
) -> Result<SystemParams, Error> {
    let mut system = SystemParams::default();
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
        if key == "$alt" || key == "alt" {
            system_param(&text, &mut system)?;
            continue;
        }
        if key == "fields" {
            fields_param(&text, &mut system)?;
            continue;
        }
        let Some(chain) = query_field(&input, &key) else {
            if options.unknown_query_params == Unknown::Ignore {
                continue;
            }
            return Err(Error::InvalidArgument(format!(
                "unknown query parameter {key:?}"
            )));
        };
        // Before a message is built along it: a recursive type lets a short query nest a
        // message thousands of levels deep, which every recursive walk after would overflow on.
        if chain.len() > MAX_MESSAGE_DEPTH {
            return Err(Error::InvalidArgument(format!(
                "query parameter {:?} names a field {} levels deep; at most \
                 {MAX_MESSAGE_DEPTH} are allowed",
                abridged(&key),
                chain.len()
            )));
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
    Ok(system)
}

/// The field chain a dotted query key names, through singular message fields.
fn query_field(
    input: &prost_reflect::MessageDescriptor,
    key: &str,
) -> Option<Vec<FieldDescriptor>> {
    let mut chain: Vec<FieldDescriptor> = Vec::new();
    let mut current = input.clone();
    for (i, part) in key.split('.').enumerate() {
        if i > 0 {
            // Only singular message fields can be walked through.
            let parent = chain.last()?;
            match parent.kind() {
                Kind::Message(m)
                    if !parent.is_list()
                        && !parent.is_map()
                        && !value::message_has_text_form(&m) =>
                {
                    current = m;
                }
                _ => return None,
            }
        }
        let field = current
            .get_field_by_name(part)
            .or_else(|| current.get_field_by_json_name(part))?;
        chain.push(field);
    }
    Some(chain)
}

/// A long parameter name cut for an error message: its start, enough to find it.
fn abridged(name: &str) -> String {
    const SHOWN: usize = 64;
    match name.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}...", &name[..end]),
        None => name.to_owned(),
    }
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
    for (depth, field) in parents.iter().enumerate() {
        alone_in_its_oneof(current, field, &chain[..depth])?;
        current = current
            .get_field_mut(field)
            .as_message_mut()
            .ok_or_else(|| {
                Error::Internal(format!("field {} is not a message", field.full_name()))
            })?;
    }
    alone_in_its_oneof(current, leaf, parents)?;
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

/// Refuses to set `field` of `message` (reached by the fields `path`) when another member of
/// its oneof is set already: protobuf would silently keep the last one, so a request naming
/// two (in the query, or one in the path or body and one in the query) would lose one of them
/// unseen. Setting the same member twice is left to the rules that govern that.
fn alone_in_its_oneof(
    message: &DynamicMessage,
    field: &FieldDescriptor,
    path: &[FieldDescriptor],
) -> Result<(), Error> {
    let Some(oneof) = field.containing_oneof() else {
        return Ok(());
    };
    let Some(other) = oneof
        .fields()
        .find(|member| member != field && message.has_field(member))
    else {
        return Ok(());
    };
    let named = |member: &FieldDescriptor| {
        let mut chain = path.to_vec();
        chain.push(member.clone());
        dotted(&chain)
    };
    let oneof_name = if path.is_empty() {
        oneof.name().to_owned()
    } else {
        format!("{}.{}", dotted(path), oneof.name())
    };
    Err(Error::InvalidArgument(format!(
        "fields {:?} and {:?} are both set, but they are members of the same oneof {oneof_name:?}: \
         set only one of them",
        named(&other),
        named(field),
    )))
}

fn deserialize_json(
    desc: prost_reflect::MessageDescriptor,
    body: &[u8],
    options: &DeserializeOptions,
) -> Result<DynamicMessage, Error> {
    let invalid = |e: serde_json::Error| Error::InvalidArgument(format!("invalid JSON body: {e}"));
    let mut de = serde_json::Deserializer::from_slice(body);
    let message = match DynamicMessage::deserialize_with_options(desc.clone(), &mut de, options)
        .and_then(|m| de.end().map(|()| m))
    {
        Ok(message) => message,
        // prost-reflect refuses a JSON number for a float field above f32::MAX as f64, but
        // the shortest spelling of f32::MAX (3.4028235e38, which protojson, json_format and
        // this gateway write) is above it and still rounds to f32::MAX. Rare, so handled on
        // this error path only: the body again through a JSON tree with such values clamped.
        Err(e) if floats::is_out_of_range(&e) => {
            floats::deserialize_clamped(desc, body, options).map_err(|_| invalid(e))?
        }
        Err(e) => return Err(invalid(e)),
    };
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
            Some(""),
            Some("application/x-www-form-urlencoded"),
            Some("text/plain;charset=UTF-8"),
        ] {
            let value = ok.map(HeaderValue::from_static);
            assert!(check_content_type(value.as_ref()).is_ok(), "{ok:?}");
        }
        for bad in ["application/xml", "multipart/form-data; boundary=x", "json"] {
            let value = HeaderValue::from_static(bad);
            assert!(check_content_type(Some(&value)).is_err(), "{bad}");
        }
    }
}
