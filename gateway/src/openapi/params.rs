//! Path and query parameters of an operation, from the request message's fields.
//!
//! Path parameters are the template's variables, named by their dotted proto field path as
//! [`openapi_path`](crate::template::PathTemplate::openapi_path) writes them. Every other
//! request field that neither the path nor the body carries is a query parameter: nested
//! singular messages are flattened into dotted names (`filter.author`), repeated scalars become
//! arrays (`?tag=a&tag=b`), and what a URL cannot carry (maps, repeated messages, `Struct`,
//! recursive messages) is left out. This mirrors what the transcoder accepts in a query.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use utoipa::openapi::{
    Array, Deprecated, RefOr, Required, Schema,
    path::{Parameter, ParameterIn, ParameterStyle},
};

use super::{comments, examples, openapiv2, schema};
use crate::json::JsonOptions;
use crate::rules::{Binding, BodyRule};
use crate::template::Segment;

/// The path parameters of `binding`, in template order.
pub(crate) fn path_params(binding: &Binding) -> Vec<Parameter> {
    let segments = binding.template.segments();
    binding
        .template
        .variables()
        .iter()
        .zip(&binding.path_fields)
        .filter_map(|(var, chain)| {
            let leaf = chain.last()?;
            let mut schema = schema::param(&leaf.kind())?;
            schema::constrain(&mut schema, leaf);
            let mut description = text(leaf);
            // `{name=shelves/*}` captures several segments: say which shape the value has.
            let covered = segments.get(var.start..var.end).unwrap_or_default();
            if !matches!(covered, [Segment::Single]) {
                let pattern = segment_regex(covered);
                if let Schema::Object(o) = &mut schema {
                    o.pattern = Some(format!("^{pattern}$"));
                }
                let shape: Vec<&str> = covered.iter().map(segment_text).collect();
                if !description.is_empty() {
                    description.push_str("\n\n");
                }
                description.push_str(&format!(
                    "Matches `{}`; the `/` between its segments are part of the path.",
                    shape.join("/")
                ));
            }
            let description = (!description.is_empty()).then_some(description);
            let schema = finish(schema, leaf, description.clone());
            Some(
                Parameter::builder()
                    .name(var.dotted())
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(description)
                    .deprecated(deprecated(leaf))
                    .schema(Some(schema))
                    .build(),
            )
        })
        .collect()
}

/// The query parameters of `binding`: none when the whole message is the body.
pub(crate) fn query_params(binding: &Binding, json: &JsonOptions) -> Vec<Parameter> {
    let body_field = match &binding.body {
        BodyRule::Whole => return Vec::new(),
        BodyRule::Field(f) => Some(f.name().to_owned()),
        BodyRule::None => None,
    };
    // Fields the path binds, as dotted proto paths (`shelf.name`).
    let bound: Vec<String> = binding
        .path_fields
        .iter()
        .map(|chain| {
            chain
                .iter()
                .map(FieldDescriptor::name)
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    let mut walk = Walk {
        json,
        bound: &bound,
        body_field: body_field.as_deref(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    walk.message(&binding.method.input(), "", "");
    walk.out
}

struct Walk<'a> {
    json: &'a JsonOptions,
    bound: &'a [String],
    body_field: Option<&'a str>,
    /// Full names of the messages being flattened, to stop at recursion.
    stack: Vec<String>,
    out: Vec<Parameter>,
}

impl Walk<'_> {
    /// Adds the parameters of `message`'s fields, under the prefixes (proto names for matching
    /// the path bindings, output names for the parameter names).
    fn message(&mut self, message: &MessageDescriptor, proto_prefix: &str, name_prefix: &str) {
        self.stack.push(message.full_name().to_owned());
        for field in message.fields() {
            let proto_path = format!("{proto_prefix}{}", field.name());
            let name = format!("{name_prefix}{}", self.json.field_name(&field));
            if proto_prefix.is_empty() && self.body_field == Some(field.name()) {
                continue;
            }
            if self.bound.contains(&proto_path) || field.is_map() {
                continue;
            }
            let kind = field.kind();
            match schema::param(&kind) {
                Some(mut item) => {
                    schema::constrain(&mut item, &field);
                    let (schema, explode) = if field.is_list() {
                        (Schema::from(Array::new(item)), Some(true))
                    } else {
                        (item, None)
                    };
                    let description = Some(text(&field)).filter(|d| !d.is_empty());
                    let schema = finish(schema, &field, description.clone());
                    self.out.push(
                        Parameter::builder()
                            .name(name)
                            .parameter_in(ParameterIn::Query)
                            .required(Required::False)
                            .description(description)
                            .deprecated(deprecated(&field))
                            .schema(Some(schema))
                            .style(explode.map(|_| ParameterStyle::Form))
                            .explode(explode)
                            .build(),
                    );
                }
                None => {
                    let Kind::Message(inner) = kind else { continue };
                    if field.is_list() || self.stack.iter().any(|m| m == inner.full_name()) {
                        continue;
                    }
                    self.message(&inner, &format!("{proto_path}."), &format!("{name}."));
                }
            }
        }
        self.stack.pop();
    }
}

/// A parameter's text: its `openapiv2_field` description, else its comment.
fn text(field: &FieldDescriptor) -> String {
    openapiv2::field(field)
        .map(|o| o.description)
        .filter(|d| !d.trim().is_empty())
        .or_else(|| comments::of_field(field))
        .unwrap_or_default()
}

/// A parameter's schema with the field's `openapiv2_field` keywords, the parameter's
/// description (generated clients take docstrings from the schema) and an example.
fn finish(schema: Schema, field: &FieldDescriptor, description: Option<String>) -> Schema {
    let mut schema = RefOr::T(schema);
    if let Some(js) = openapiv2::field(field) {
        openapiv2::apply(&mut schema, &js);
    }
    match &mut schema {
        RefOr::T(Schema::Object(o)) => o.description = description,
        RefOr::T(Schema::Array(a)) => a.description = description,
        _ => {}
    }
    examples::fill(&mut schema, Some(field.name()));
    match schema {
        RefOr::T(s) => s,
        // `apply` and `fill` keep an inline schema inline.
        RefOr::Ref(_) => Schema::default(),
    }
}

fn deprecated(field: &FieldDescriptor) -> Option<Deprecated> {
    let options = field.field_descriptor_proto().options.as_ref()?;
    options.deprecated?.then_some(Deprecated::True)
}

fn segment_text(segment: &Segment) -> &str {
    match segment {
        Segment::Literal(lit) => lit,
        Segment::Single => "*",
        Segment::Multi => "**",
    }
}

/// A regular expression for a run of template segments.
fn segment_regex(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Segment::Literal(lit) => lit
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c.to_string()
                    } else {
                        format!("\\{c}")
                    }
                })
                .collect(),
            Segment::Single => "[^/]+".to_owned(),
            Segment::Multi => ".*".to_owned(),
        })
        .collect::<Vec<String>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_regex_escapes_literals() {
        assert_eq!(
            segment_regex(&[
                Segment::Literal("shelves.v1".into()),
                Segment::Single,
                Segment::Multi
            ]),
            r"shelves\.v1/[^/]+/.*"
        );
    }
}
