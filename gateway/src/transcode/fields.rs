//! Partial responses, as Google's APIs define them: the `fields` system parameter
//! (`?fields=articles(id,title),total`, with `/` for sub-fields) and the `X-Goog-FieldMask`
//! header (FieldMask paths, `articles.id,articles.title,total`) keep only those fields of each
//! answer: a unary one and every message of a stream.
//!
//! The mask is resolved against the answer's message when the request arrives, so a path
//! naming no field is a 400 before any call. A path through a repeated message field applies
//! to each element; a map field is kept or dropped whole. With `response_body`, paths are
//! relative to the field sent. Applying it decodes the answer, clears what the mask leaves out
//! and encodes it again, then the JSON writer runs as for any answer: only requests that ask
//! for a mask pay for it.
//!
//! Hand-written: no crate parses Google's `fields` syntax, and prost-types' `FieldMask` has no
//! merge or prune over dynamic messages.

use std::collections::BTreeMap;

use prost::Message as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _, Value,
};

use crate::error::Error;

/// The header that carries a FieldMask.
pub const FIELD_MASK_HEADER: &str = "x-goog-fieldmask";

/// The most paths a mask may have, and the longest path: a request cannot make the gateway
/// walk an unbounded tree.
const MAX_PATHS: usize = 256;
const MAX_PATH_DEPTH: usize = 32;

/// Which fields of an answer are kept (proto field names, as a tree; a leaf keeps the whole
/// field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseMask {
    root: Node,
    /// The `response_body` field the paths are relative to, when there is one.
    under: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node(BTreeMap<String, Node>);

impl ResponseMask {
    /// The mask a request asks for: `fields` (a query value) or `X-Goog-FieldMask` (a header
    /// value), resolved against `output` (or its `response_body` field's message). `None`
    /// when neither is given.
    ///
    /// # Errors
    /// Both given, a syntax error, a path naming no field, a path through a scalar, too many
    /// or too deep paths: a 400 naming it.
    pub fn from_request(
        fields: Option<&str>,
        header: Option<&str>,
        output: &MessageDescriptor,
        response_body: Option<&FieldDescriptor>,
    ) -> Result<Option<Self>, Error> {
        // `*` or nothing selects the whole answer, as Google's APIs read it.
        let whole = |v: &&str| !v.trim().is_empty() && v.trim() != "*";
        let (fields, header) = (fields.filter(whole), header.filter(whole));
        let paths = match (fields, header) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument(
                    "give either the fields parameter or the X-Goog-FieldMask header, not both"
                        .to_owned(),
                ));
            }
            (Some(fields), None) => parse_fields(fields)
                .map_err(|e| Error::InvalidArgument(format!("invalid fields {fields:?}: {e}")))?,
            (None, Some(mask)) => parse_field_mask(mask),
        };
        if paths.len() > MAX_PATHS {
            return Err(Error::InvalidArgument(format!(
                "the field mask has {} paths; at most {MAX_PATHS} are allowed",
                paths.len()
            )));
        }
        let (target, under) = match response_body {
            None => (output.clone(), None),
            Some(field) => match field.kind() {
                Kind::Message(message) if !field.is_map() => {
                    (message, Some(field.name().to_owned()))
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "a field mask selects message fields; this answer is the field {:?}",
                        field.name()
                    )));
                }
            },
        };
        let mut root = Node::default();
        for path in &paths {
            if path.is_empty() || path.len() > MAX_PATH_DEPTH {
                return Err(Error::InvalidArgument(format!(
                    "field mask path {:?} is empty or deeper than {MAX_PATH_DEPTH} fields",
                    path.join(".")
                )));
            }
            let names = resolve(&target, path).map_err(|e| {
                Error::InvalidArgument(format!(
                    "field mask path {:?}: {e} of {}",
                    path.join("."),
                    target.full_name()
                ))
            })?;
            let mut node = &mut root;
            for name in names {
                node = node.0.entry(name).or_default();
            }
        }
        Ok(Some(Self { root, under }))
    }

    /// The answer `wire` (an encoded `descriptor`) with only the masked fields.
    ///
    /// # Errors
    /// Bytes that do not decode as `descriptor`.
    pub fn apply(&self, wire: &[u8], descriptor: &MessageDescriptor) -> Result<Vec<u8>, Error> {
        let mut message = DynamicMessage::decode(descriptor.clone(), wire)
            .map_err(|e| Error::Internal(format!("the backend's answer does not decode: {e}")))?;
        match &self.under {
            None => prune(&mut message, &self.root),
            Some(field) => {
                if let Some(mut value) = message.get_field_by_name(field).map(|v| v.into_owned()) {
                    prune_value(&mut value, &self.root);
                    message.set_field_by_name(field, value);
                }
            }
        }
        Ok(message.encode_to_vec())
    }
}

/// The proto names along `path` (proto or JSON names accepted), through message fields.
fn resolve(message: &MessageDescriptor, path: &[String]) -> Result<Vec<String>, String> {
    let mut names = Vec::with_capacity(path.len());
    let mut current = Some(message.clone());
    for (i, name) in path.iter().enumerate() {
        let Some(message) = current.take() else {
            return Err(format!("{:?} is not a message", path[..i].join(".")));
        };
        let field = message
            .get_field_by_name(name)
            .or_else(|| message.get_field_by_json_name(name))
            .ok_or_else(|| format!("no field {name:?}"))?;
        if let Kind::Message(inner) = field.kind()
            && !field.is_map()
        {
            current = Some(inner);
        }
        names.push(field.name().to_owned());
    }
    Ok(names)
}

fn prune(message: &mut DynamicMessage, node: &Node) {
    let fields: Vec<FieldDescriptor> = message.descriptor().fields().collect();
    for field in fields {
        match node.0.get(field.name()) {
            None => message.clear_field(&field),
            Some(child) if !child.0.is_empty() => {
                if message.has_field(&field) {
                    let mut value = message.get_field(&field).into_owned();
                    prune_value(&mut value, child);
                    message.set_field(&field, value);
                }
            }
            Some(_) => {}
        }
    }
}

fn prune_value(value: &mut Value, node: &Node) {
    match value {
        Value::Message(inner) => prune(inner, node),
        Value::List(items) => {
            for item in items {
                prune_value(item, node);
            }
        }
        _ => {}
    }
}

/// FieldMask paths: `a.b,c`.
fn parse_field_mask(text: &str) -> Vec<Vec<String>> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.split('.').map(str::to_owned).collect())
        .collect()
}

/// Google's `fields` syntax: `a,b/c,d(e,f/g)`.
fn parse_fields(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    selection(&chars, &mut at, &[], &mut out, 0)?;
    if at != chars.len() {
        return Err(format!("unexpected {:?} at {at}", chars[at]));
    }
    Ok(out)
}

/// One comma-separated selection, until `)` or the end.
fn selection(
    chars: &[char],
    at: &mut usize,
    prefix: &[String],
    out: &mut Vec<Vec<String>>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_PATH_DEPTH {
        return Err("selections nest too deep".to_owned());
    }
    loop {
        let mut path = prefix.to_vec();
        let mut name = String::new();
        while let Some(&c) = chars.get(*at) {
            match c {
                c if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                '/' => {
                    if name.is_empty() {
                        return Err(format!("empty field name at {}", *at));
                    }
                    path.push(std::mem::take(&mut name));
                }
                _ => break,
            }
            *at += 1;
        }
        if name.is_empty() {
            return Err(format!("empty field name at {}", *at));
        }
        path.push(name);
        if chars.get(*at) == Some(&'(') {
            *at += 1;
            selection(chars, at, &path, out, depth + 1)?;
            if chars.get(*at) != Some(&')') {
                return Err("unclosed (".to_owned());
            }
            *at += 1;
        } else {
            out.push(path);
        }
        match chars.get(*at) {
            Some(',') => *at += 1,
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        parse_fields(text)
            .expect("valid")
            .iter()
            .map(|p| p.join("."))
            .collect()
    }

    #[test]
    fn googles_fields_syntax_becomes_field_mask_paths() {
        assert_eq!(paths("a"), ["a"]);
        assert_eq!(paths("a,b/c"), ["a", "b.c"]);
        assert_eq!(
            paths("articles(id,title),total"),
            ["articles.id", "articles.title", "total"]
        );
        assert_eq!(paths("a(b(c,d/e)),f"), ["a.b.c", "a.b.d.e", "f"]);
        for bad in ["a,", "a(", "a(b", "a)", "a//b", "a b", "a,*"] {
            assert!(parse_fields(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_star_or_nothing_selects_the_whole_answer() {
        let output = prost_reflect::DescriptorPool::global()
            .get_message_by_name("google.protobuf.Duration")
            .expect("a well-known type");
        for (fields, header) in [
            (Some("*"), None),
            (None, Some(" * ")),
            (Some(""), Some("*")),
        ] {
            assert_eq!(
                ResponseMask::from_request(fields, header, &output, None).expect("no error"),
                None
            );
        }
    }

    #[test]
    fn field_mask_paths_split_on_commas_and_dots() {
        let got: Vec<String> = parse_field_mask("a.b, c ,")
            .iter()
            .map(|p| p.join("."))
            .collect();
        assert_eq!(got, ["a.b", "c"]);
    }
}
