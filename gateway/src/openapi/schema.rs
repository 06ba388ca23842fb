//! JSON Schemas for proto messages, enums and fields, following the proto3 JSON mapping.
//!
//! Messages and enums become reusable components named by their full proto name
//! (`article.v1.Article`) and referenced with `$ref`, which also handles recursive messages.
//! Well-known types (`Timestamp`, wrappers, `Struct`, ...) have their own JSON forms and are
//! written inline instead.
//!
//! A message can be described twice, because what the gateway writes and what it reads differ:
//! - as written in responses ([`Direction::Read`]): with `emit_defaults`, every field without
//!   presence is always present, so it is listed in `required`;
//! - as read from request bodies ([`Direction::Write`]): nothing is required (proto3 fields are
//!   optional on input) and unknown fields are rejected (`additionalProperties: false`).
//!
//! A message used in only one direction gets its plain name. One used in both gets the plain
//! name for its response form and `<full name>-Input` for its request form; `-` cannot occur in
//! a proto name, so that cannot collide with another message. A `body: "*"` body less the
//! fields its path binds is `<name>-Body`, one component for every binding that binds the same
//! fields.

use std::collections::BTreeMap;

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use utoipa::{
    Number,
    openapi::{
        Array, KnownFormat, Object, ObjectBuilder, OneOf, Ref, RefOr, Schema, SchemaFormat, Type,
        schema::{AdditionalProperties, SchemaType},
    },
};

use super::{comments, examples, openapiv2};
use crate::{
    constraints::{Behavior, FieldRules},
    json::{JsonNames, JsonOptions},
};

/// The error schema's name (google.rpc's), which no message or enum component takes.
pub(crate) const STATUS_SCHEMA: &str = "Status";

/// Which way a message travels, which decides the shape of its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Written by the gateway: response bodies.
    Read,
    /// Read by the gateway: request bodies.
    Write,
}

/// Where a schema is used: the two body directions, or a URL parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Body(Direction),
    /// Path or query parameter: always an inline scalar (or array of scalars) schema.
    Param,
}

/// The proto3 JSON form of non-finite floating-point numbers.
const NON_FINITE: [&str; 3] = ["NaN", "Infinity", "-Infinity"];

/// The messages and enums an API uses, collected first so that names can be chosen knowing
/// every direction a message is used in, then written out as components.
#[derive(Debug)]
pub(crate) struct Schemas<'j> {
    json: &'j JsonOptions,
    read: BTreeMap<String, MessageDescriptor>,
    write: BTreeMap<String, MessageDescriptor>,
    enums: BTreeMap<String, EnumDescriptor>,
    /// `body: "*"` request bodies less their path-bound fields, by component name.
    bodies: BTreeMap<String, Body>,
}

/// A request body made of some of a message's fields (those the path does not bind).
#[derive(Debug, Clone)]
struct Body {
    message: MessageDescriptor,
    fields: Vec<FieldDescriptor>,
    path_fields: Vec<String>,
}

impl<'j> Schemas<'j> {
    pub(crate) fn new(json: &'j JsonOptions) -> Self {
        Self {
            json,
            read: BTreeMap::new(),
            write: BTreeMap::new(),
            enums: BTreeMap::new(),
            bodies: BTreeMap::new(),
        }
    }

    /// Records a `body: "*"` body less the fields the path binds, and its fields' types.
    pub(crate) fn visit_body(
        &mut self,
        message: &MessageDescriptor,
        fields: &[FieldDescriptor],
        path_fields: &[String],
    ) {
        for field in fields {
            self.visit_field(field, Direction::Write);
        }
        let body = Body {
            message: message.clone(),
            fields: fields.to_vec(),
            path_fields: path_fields.to_vec(),
        };
        // Every binding with the same path-bound fields shares the component.
        let key = body_key(message, path_fields);
        self.bodies.entry(key).or_insert(body);
    }

    /// The component name of a body: `<message>-Body`, with the path-bound fields appended
    /// when bindings of the message bind different ones (`-` cannot occur in a proto name).
    fn body_name(&self, message: &MessageDescriptor, path_fields: &[String]) -> String {
        let base = format!(
            "{}-Body",
            self.short_name(message.full_name(), message.package_name())
        );
        let variants = self
            .bodies
            .values()
            .filter(|b| b.message.full_name() == message.full_name())
            .count();
        if variants > 1 {
            format!("{base}-{}", path_fields.join("-"))
        } else {
            base
        }
    }

    /// Records that `message` (and everything it contains) is used in `dir`.
    pub(crate) fn visit_message(&mut self, message: &MessageDescriptor, dir: Direction) {
        if well_known(message, Use::Body(dir)).is_some() {
            return;
        }
        let set = match dir {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        };
        // Already seen: stop here, which is also what ends recursive messages.
        if set
            .insert(message.full_name().to_owned(), message.clone())
            .is_some()
        {
            return;
        }
        for field in message.fields() {
            self.visit_field(&field, dir);
        }
    }

    /// Records the message or enum type of `field`, if any.
    pub(crate) fn visit_field(&mut self, field: &FieldDescriptor, dir: Direction) {
        match value_kind(field) {
            Kind::Message(m) => self.visit_message(&m, dir),
            Kind::Enum(e) if !is_null_value(&e) => {
                self.enums.insert(e.full_name().to_owned(), e);
            }
            _ => {}
        }
    }

    /// The component name of `message` in `dir`.
    fn message_name(&self, message: &MessageDescriptor, dir: Direction) -> String {
        let full = message.full_name();
        let name = self.short_name(full, message.package_name());
        if dir == Direction::Write && self.read.contains_key(full) {
            format!("{name}-Input")
        } else {
            name
        }
    }

    /// A type's component name: its name within its package (`Article`, `Shelf.Book`), which
    /// generated code turns into a clean identifier; the full name only when another package
    /// has a type of the same name, or when it would take the error schema's name.
    pub(crate) fn short_name(&self, full: &str, package: &str) -> String {
        fn short<'a>(full: &'a str, package: &str) -> &'a str {
            if package.is_empty() {
                return full;
            }
            full.strip_prefix(package)
                .and_then(|rest| rest.strip_prefix('.'))
                .unwrap_or(full)
        }
        let mine = short(full, package);
        let collides = mine == STATUS_SCHEMA
            || self
                .read
                .values()
                .chain(self.write.values())
                .map(|m| (m.full_name(), m.package_name()))
                .chain(
                    self.enums
                        .values()
                        .map(|e| (e.full_name(), e.package_name())),
                )
                .any(|(other, package)| other != full && short(other, package) == mine);
        if collides { full } else { mine }.to_owned()
    }

    /// The schema of a message in `dir`: a `$ref`, or inline for well-known types.
    pub(crate) fn message(&self, message: &MessageDescriptor, dir: Direction) -> RefOr<Schema> {
        match well_known(message, Use::Body(dir)) {
            Some(schema) => schema,
            None => Ref::from_schema_name(self.message_name(message, dir)).into(),
        }
    }

    /// The schema of a field's value (map, array or single value) in `dir`, described by the
    /// field's comment.
    pub(crate) fn field(&self, field: &FieldDescriptor, dir: Direction) -> RefOr<Schema> {
        let schema = if field.is_map() {
            self.map(field, dir)
        } else if field.is_list() {
            let mut item = self.kind(&field.kind(), dir);
            if dir == Direction::Write
                && let RefOr::T(schema) = &mut item
            {
                constrain(schema, field);
            }
            Array::new(item).into()
        } else {
            let mut schema = self.kind(&field.kind(), dir);
            if dir == Direction::Write
                && let RefOr::T(schema) = &mut schema
            {
                constrain(schema, field);
            }
            schema
        };
        describe(schema, self.field_description(field))
    }

    fn map(&self, field: &FieldDescriptor, dir: Direction) -> RefOr<Schema> {
        let Kind::Message(entry) = field.kind() else {
            // A map field's kind is always its synthetic entry message.
            return Object::with_type(Type::Object).into();
        };
        let key = entry.map_entry_key_field();
        // JSON object keys are strings; say how non-string proto keys are spelled.
        let key_names = match key.kind() {
            Kind::Bool => Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["true", "false"]))
                    .build(),
            ),
            Kind::String => None,
            Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+$"))
                    .build(),
            ),
            _ => Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^-?[0-9]+$"))
                    .build(),
            ),
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(key_names)
            .additional_properties(Some(AdditionalProperties::RefOr(
                self.kind(&entry.map_entry_value_field().kind(), dir),
            )))
            .into()
    }

    /// A message field as a property: its [`Self::field`] schema, `readOnly` when the field
    /// is OUTPUT_ONLY (the gateway refuses it in requests).
    fn property(&self, field: &FieldDescriptor, dir: Direction) -> RefOr<Schema> {
        let mut schema = self.field(field, dir);
        let options = openapiv2::field(field);
        if let Some(js) = &options {
            openapiv2::apply(&mut schema, js);
        }
        let behavior = Behavior::of(field);
        // A field with presence in a request (proto3 `optional`, a message field): `null` is
        // read as "not set" (PATCH `{"content": null}` leaves the content), so the schema says
        // it may be null. Not where null is refused: a REQUIRED field, an OUTPUT_ONLY one.
        if dir == Direction::Write
            && field.supports_presence()
            && !field.is_list()
            && !behavior.required
            && !behavior.output_only
            && !accepts_null_itself(field)
        {
            schema = or_null(schema);
        }
        if behavior.output_only || options.as_ref().is_some_and(|o| o.read_only) {
            set_read_only(&mut schema);
        }
        examples::fill(&mut schema, Some(self.json.field_name(field)));
        schema
    }

    /// Whether a field is required in its message's schemas: REQUIRED by its
    /// `google.api.field_behavior`, or by its `openapiv2_field` (`required` listed).
    fn required(field: &FieldDescriptor) -> bool {
        Behavior::of(field).required
            || openapiv2::field(field).is_some_and(|o| !o.required.is_empty())
    }

    /// The schema of one value of `kind` in a body.
    fn kind(&self, kind: &Kind, dir: Direction) -> RefOr<Schema> {
        match kind {
            Kind::Message(m) => self.message(m, dir),
            Kind::Enum(e) if !is_null_value(e) => {
                Ref::from_schema_name(self.short_name(e.full_name(), e.package_name())).into()
            }
            other => match scalar(other, Use::Body(dir)) {
                Some(schema) => schema.into(),
                // `scalar` covers every non-message kind; an empty schema accepts anything.
                None => Object::with_type(SchemaType::AnyValue).into(),
            },
        }
    }

    /// The field's comment, plus what JSON cannot say by itself: oneof membership.
    fn field_description(&self, field: &FieldDescriptor) -> Option<String> {
        let mut text = field_text(field);
        if Behavior::of(field).immutable {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str("Immutable: set when the resource is created, never changed afterwards.");
        }
        if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
            let members: Vec<String> = oneof
                .fields()
                .map(|f| format!("`{}`", self.json.field_name(&f)))
                .collect();
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&format!(
                "One of `{}`: at most one of {} is set.",
                oneof.name(),
                members.join(", ")
            ));
        }
        (!text.is_empty()).then_some(text)
    }

    /// The request body made of some of a message's fields (`body: "*"` less the fields bound
    /// by the path): a reference to its component, which every such binding shares.
    pub(crate) fn body_object(
        &self,
        message: &MessageDescriptor,
        path_fields: &[String],
    ) -> RefOr<Schema> {
        Ref::from_schema_name(self.body_name(message, path_fields)).into()
    }

    fn body_component(&self, body: &Body) -> RefOr<Schema> {
        let Body {
            message,
            fields,
            path_fields,
        } = body;
        let mut builder = ObjectBuilder::new().schema_type(Type::Object);
        for field in fields {
            let name = self.json.field_name(field);
            builder = builder.property(name, self.property(field, Direction::Write));
            if Self::required(field) {
                builder = builder.required(name);
            }
        }
        let mut description = comments::of_message(message).unwrap_or_default();
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!(
            "`{}` without {}, which the path carries. {}",
            message.full_name(),
            path_fields
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", "),
            self.input_note()
        ));
        builder
            .description(Some(description))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }

    /// What a request schema cannot express: the gateway accepts both field namings.
    fn input_note(&self) -> &'static str {
        match self.json.names {
            JsonNames::Proto => {
                "Unknown fields are rejected; lowerCamelCase field names are accepted too."
            }
            JsonNames::Camel => {
                "Unknown fields are rejected; the proto field names are accepted too."
            }
        }
    }

    /// Every component: messages in each direction they are used in, and enums.
    pub(crate) fn components(&self) -> Vec<(String, RefOr<Schema>)> {
        let mut out = Vec::new();
        for (dir, set) in [
            (Direction::Read, &self.read),
            (Direction::Write, &self.write),
        ] {
            for message in set.values() {
                out.push((
                    self.message_name(message, dir),
                    self.message_component(message, dir),
                ));
            }
        }
        for body in self.bodies.values() {
            out.push((
                self.body_name(&body.message, &body.path_fields),
                self.body_component(body),
            ));
        }
        for e in self.enums.values() {
            out.push((
                self.short_name(e.full_name(), e.package_name()),
                enum_component(e).into(),
            ));
        }
        out
    }

    fn message_component(&self, message: &MessageDescriptor, dir: Direction) -> RefOr<Schema> {
        let mut builder = ObjectBuilder::new().schema_type(Type::Object);
        for field in message.fields() {
            let name = self.json.field_name(&field);
            builder = builder.property(name, self.property(&field, dir));
            // The serializer writes every field that has no presence when defaults are emitted
            // (see `JsonOptions::serialize_options`); fields with presence only when set, which
            // a REQUIRED one always is in a response (AIP-203), and a request must set.
            let always_written = self.json.emit_defaults && !field.supports_presence();
            let required = Self::required(&field);
            if (dir == Direction::Read && (always_written || required))
                || (dir == Direction::Write && required)
            {
                builder = builder.required(name);
            }
        }
        let options = openapiv2::message(message);
        let mut object = builder.build();
        if let Some(options) = &options {
            let json = self.json;
            openapiv2::apply_message(&mut object, options, |name| {
                message
                    .get_field_by_name(name)
                    .or_else(|| message.get_field_by_json_name(name))
                    .map(|f| json.field_name(&f).to_owned())
            });
        }
        // The option's description replaces the comment, as with protoc-gen-openapiv2.
        let mut description = object
            .description
            .take()
            .or_else(|| comments::of_message(message));
        if dir == Direction::Write {
            // What a request must not send stays out of the request's example.
            let read_only: Vec<String> = message
                .fields()
                .filter(|f| Behavior::of(f).output_only)
                .map(|f| self.json.field_name(&f).to_owned())
                .collect();
            for example in &mut object.examples {
                if let serde_json::Value::Object(map) = example {
                    map.retain(|k, _| !read_only.contains(k));
                }
            }
        }
        let mut builder = ObjectBuilder::from(object);
        if dir == Direction::Write {
            builder = builder.additional_properties(Some(AdditionalProperties::FreeForm(false)));
            description = Some(match description {
                Some(text) => format!("{text}\n\n{}", self.input_note()),
                None => self.input_note().to_owned(),
            });
        }
        builder.description(description).into()
    }
}

/// The schema of a path or query parameter of `kind`, or `None` when a URL cannot carry it
/// (non-scalar messages, which the caller flattens or leaves out).
pub(crate) fn param(kind: &Kind) -> Option<Schema> {
    match kind {
        Kind::Message(m) => match well_known(m, Use::Param)? {
            RefOr::T(schema) => Some(schema),
            RefOr::Ref(_) => None,
        },
        other => scalar(other, Use::Param),
    }
}

/// Adds the field's `articles.options.rules` to the schema of one of its values, as JSON
/// Schema keywords: the gateway enforces them on requests
/// ([`Constraints`](crate::constraints::Constraints)).
pub(crate) fn constrain(schema: &mut Schema, field: &FieldDescriptor) {
    let Some(rules) = FieldRules::of(field) else {
        return;
    };
    let Schema::Object(o) = schema else {
        return;
    };
    let number = |n: i64| match isize::try_from(n) {
        Ok(n) => Number::Int(n),
        // Only on targets narrower than 64 bits; a float is the closest JSON number.
        Err(_) => Number::Float(n as f64),
    };
    o.minimum = rules.minimum.map(number).or(o.minimum.take());
    o.maximum = rules.maximum.map(number).or(o.maximum.take());
    o.min_length = rules.min_length.map(|n| n as usize).or(o.min_length);
    o.max_length = rules.max_length.map(|n| n as usize).or(o.max_length);
}

/// The key under which a body is recorded: the message and the fields the path binds.
fn body_key(message: &MessageDescriptor, path_fields: &[String]) -> String {
    format!("{} {}", message.full_name(), path_fields.join(","))
}

/// A field's own text: its `openapiv2_field` description, else its comment.
fn field_text(field: &FieldDescriptor) -> String {
    openapiv2::field(field)
        .map(|o| o.description)
        .filter(|d| !d.trim().is_empty())
        .or_else(|| comments::of_field(field))
        .unwrap_or_default()
}

/// Fields whose schema takes `null` already: wrappers (nullable by their schema) and
/// `google.protobuf.Value` (for which `null` is a value).
fn accepts_null_itself(field: &FieldDescriptor) -> bool {
    let Kind::Message(m) = field.kind() else {
        return false;
    };
    m.full_name() == "google.protobuf.Value"
        || (m.package_name() == "google.protobuf" && m.name().ends_with("Value"))
}

/// `schema`, also accepting `null`: `[T, "null"]` for a plain schema, a `oneOf` with a null
/// branch for a `$ref` (its description moved onto the `oneOf`).
fn or_null(schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(o)) if !matches!(o.schema_type, SchemaType::AnyValue) => {
            RefOr::T(nullable(Schema::Object(o)))
        }
        RefOr::T(Schema::OneOf(o)) => RefOr::T(nullable(Schema::OneOf(o))),
        RefOr::Ref(mut r) => {
            let description = std::mem::take(&mut r.description);
            let mut one_of = OneOf::builder()
                .item(RefOr::Ref(r))
                .item(typed(Type::Null, None).build())
                .build();
            one_of.description = (!description.is_empty()).then_some(description);
            RefOr::T(Schema::OneOf(one_of))
        }
        RefOr::T(Schema::Array(a)) => {
            let description = a.description.clone();
            let mut one_of = OneOf::builder()
                .item(Schema::Array(a))
                .item(typed(Type::Null, None).build())
                .build();
            one_of.description = description;
            RefOr::T(Schema::OneOf(one_of))
        }
        other => other,
    }
}

/// Marks a property `readOnly` (on a `oneOf`, on its branches, which is where the keyword fits).
fn set_read_only(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(o)) => o.read_only = Some(true),
        RefOr::T(Schema::OneOf(o)) => {
            for item in &mut o.items {
                if let RefOr::T(Schema::Object(b)) = item {
                    b.read_only = Some(true);
                }
            }
        }
        _ => {}
    }
}

/// The kind of a field's values: a map's value type, else the field's own.
fn value_kind(field: &FieldDescriptor) -> Kind {
    match field.kind() {
        Kind::Message(entry) if field.is_map() => entry.map_entry_value_field().kind(),
        kind => kind,
    }
}

fn is_null_value(e: &EnumDescriptor) -> bool {
    e.full_name() == "google.protobuf.NullValue"
}

/// Sets the description of a schema (a `$ref` can carry one next to it in OpenAPI 3.1).
fn describe(schema: RefOr<Schema>, description: Option<String>) -> RefOr<Schema> {
    let Some(description) = description else {
        return schema;
    };
    match schema {
        RefOr::Ref(mut r) => {
            r.description = description;
            RefOr::Ref(r)
        }
        RefOr::T(Schema::Object(mut o)) => {
            o.description = Some(description);
            RefOr::T(Schema::Object(o))
        }
        RefOr::T(Schema::Array(mut a)) => {
            a.description = Some(description);
            RefOr::T(Schema::Array(a))
        }
        RefOr::T(Schema::OneOf(mut o)) => {
            o.description = Some(description);
            RefOr::T(Schema::OneOf(o))
        }
        other => other,
    }
}

fn typed(schema_type: impl Into<SchemaType>, format: Option<KnownFormat>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(schema_type)
        .format(format.map(SchemaFormat::KnownFormat))
}

/// The schema of a scalar or enum value, or `None` for messages.
fn scalar(kind: &Kind, usage: Use) -> Option<Schema> {
    let schema: Schema = match kind {
        Kind::Double | Kind::Float => {
            let format = if *kind == Kind::Double {
                KnownFormat::Double
            } else {
                KnownFormat::Float
            };
            let number = typed(Type::Number, Some(format)).build();
            match usage {
                // Query strings parse "NaN" the same way; no need to complicate the form field.
                Use::Param => number.into(),
                // proto3 JSON writes non-finite values as strings.
                Use::Body(_) => OneOf::builder()
                    .item(number)
                    .item(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(NON_FINITE)),
                    )
                    .build()
                    .into(),
            }
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            typed(Type::Integer, Some(KnownFormat::Int32))
                .build()
                .into()
        }
        // Beyond int32's range: an int64 (the widest standard format) bounded to 32 bits.
        Kind::Uint32 | Kind::Fixed32 => typed(Type::Integer, Some(KnownFormat::Int64))
            .minimum(Some(0))
            .maximum(Some(u32::MAX))
            .build()
            .into(),
        // proto3 JSON writes 64-bit integers as strings (JavaScript numbers lose precision
        // past 2^53) and reads both strings and numbers.
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            int64(usage, "^-?[0-9]+$", KnownFormat::Int64)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            let mut schema = int64(usage, "^[0-9]+$", KnownFormat::Int64);
            if let Schema::Object(o) = &mut schema {
                o.format = Some(SchemaFormat::Custom("uint64".to_owned()));
                if usage == Use::Body(Direction::Write) {
                    o.minimum = Some(0.into());
                }
            }
            schema
        }
        Kind::Bool => typed(Type::Boolean, None).build().into(),
        Kind::String => typed(Type::String, None).build().into(),
        Kind::Bytes => typed(Type::String, Some(KnownFormat::Byte)).build().into(),
        Kind::Enum(e) if is_null_value(e) => typed(Type::Null, None).build().into(),
        Kind::Enum(e) => enum_component(e).into(),
        Kind::Message(_) => return None,
    };
    Some(schema)
}

fn int64(usage: Use, pattern: &str, format: KnownFormat) -> Schema {
    let types: SchemaType = match usage {
        Use::Body(Direction::Write) => [Type::String, Type::Integer].into_iter().collect(),
        _ => Type::String.into(),
    };
    typed(types, Some(format))
        .pattern(Some(pattern))
        .build()
        .into()
}

/// An enum as proto3 JSON writes it: the value's name.
fn enum_component(e: &EnumDescriptor) -> Object {
    let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
    let mut description = comments::of_enum(e).unwrap_or_default();
    let documented: Vec<String> = e
        .values()
        .filter_map(|v| {
            comments::of_enum_value(&v)
                .map(|c| format!("- `{}`: {}", v.name(), c.replace('\n', " ")))
        })
        .collect();
    if !documented.is_empty() {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&documented.join("\n"));
    }
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str("Written as the value's name; the number is accepted on input too.");
    // The first value with a meaning: the zero value is, by convention, "unspecified".
    let example = e
        .values()
        .find(|v| v.number() != 0)
        .or_else(|| e.values().next())
        .map(|v| v.name().to_owned());
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some(description))
        .examples(example)
        .build()
}

/// The proto3 JSON form of a well-known type, or `None` for other messages. In a parameter,
/// only the types with a scalar JSON form are allowed (the others are `None` too).
/// `schema`, also accepting JSON `null` (which proto3 JSON reads as "not set").
fn nullable(schema: Schema) -> Schema {
    match schema {
        Schema::Object(mut o) => {
            let mut types = match o.schema_type {
                SchemaType::Type(t) => vec![t],
                SchemaType::Array(ts) => ts,
                SchemaType::AnyValue => return Schema::Object(o),
            };
            if !types.contains(&Type::Null) {
                types.push(Type::Null);
            }
            o.schema_type = SchemaType::Array(types);
            Schema::Object(o)
        }
        // Floats are a oneOf (number | non-finite string): add a null branch.
        Schema::OneOf(mut o) => {
            o.items.push(typed(Type::Null, None).build().into());
            Schema::OneOf(o)
        }
        other => other,
    }
}

fn well_known(message: &MessageDescriptor, usage: Use) -> Option<RefOr<Schema>> {
    let param = usage == Use::Param;
    let wrapped = |kind: Kind| -> Option<RefOr<Schema>> {
        let schema = scalar(&kind, usage)?;
        if param {
            return Some(schema.into());
        }
        // A wrapper's point is to tell "unset" from the default: in JSON, `null`.
        Some(nullable(schema).into())
    };
    let schema: RefOr<Schema> = match message.full_name() {
        "google.protobuf.Timestamp" => typed(Type::String, Some(KnownFormat::DateTime))
            .examples(["1972-01-01T10:00:20.021Z"])
            .into(),
        // Not JSON Schema's `duration` format, which is ISO 8601 (`PT1S`).
        "google.protobuf.Duration" => typed(Type::String, None)
            .pattern(Some(r"^-?[0-9]+(\.[0-9]{1,9})?s$"))
            .examples(["1.5s"])
            .into(),
        "google.protobuf.FieldMask" => typed(Type::String, None)
            .description(Some("Comma-separated field paths, in lowerCamelCase."))
            .examples(["name"])
            .into(),
        "google.protobuf.DoubleValue" => wrapped(Kind::Double)?,
        "google.protobuf.FloatValue" => wrapped(Kind::Float)?,
        "google.protobuf.Int64Value" => wrapped(Kind::Int64)?,
        "google.protobuf.UInt64Value" => wrapped(Kind::Uint64)?,
        "google.protobuf.Int32Value" => wrapped(Kind::Int32)?,
        "google.protobuf.UInt32Value" => wrapped(Kind::Uint32)?,
        "google.protobuf.BoolValue" => wrapped(Kind::Bool)?,
        "google.protobuf.StringValue" => wrapped(Kind::String)?,
        "google.protobuf.BytesValue" => wrapped(Kind::Bytes)?,
        // The remaining well-known types are JSON structures: not in a URL.
        _ if param => return None,
        "google.protobuf.Struct" => typed(Type::Object, None)
            .examples([serde_json::json!({"key": "value"})])
            .into(),
        "google.protobuf.Value" => Object::with_type(SchemaType::AnyValue).into(),
        "google.protobuf.ListValue" => Array::new(Object::with_type(SchemaType::AnyValue)).into(),
        "google.protobuf.Empty" => typed(Type::Object, None)
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .examples([serde_json::json!({})])
            .into(),
        "google.protobuf.Any" => typed(Type::Object, None)
            .property(
                "@type",
                typed(Type::String, None).description(Some("The type URL of the packed message.")),
            )
            .required("@type")
            .description(Some(
                "A packed message: `@type` and the message's own JSON fields.",
            ))
            .examples([serde_json::json!({"@type": "type.googleapis.com/google.protobuf.Empty"})])
            .into(),
        _ => return None,
    };
    Some(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: impl serde::Serialize) -> serde_json::Value {
        match serde_json::to_value(s) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn scalars_follow_the_proto3_json_mapping() {
        let read = Use::Body(Direction::Read);
        let s = |k: Kind, u: Use| json(scalar(&k, u));
        assert_eq!(
            s(Kind::Int32, read),
            serde_json::json!({"type": "integer", "format": "int32"})
        );
        assert_eq!(
            s(Kind::Int64, read),
            serde_json::json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"})
        );
        assert_eq!(
            s(Kind::Int64, Use::Body(Direction::Write))["type"],
            serde_json::json!(["string", "integer"])
        );
        assert_eq!(
            s(Kind::Uint32, read),
            serde_json::json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u32})
        );
        assert_eq!(s(Kind::Uint64, read)["format"], "uint64");
        assert_eq!(
            s(Kind::Bytes, read),
            serde_json::json!({"type": "string", "format": "byte"})
        );
        assert_eq!(
            s(Kind::Double, Use::Param),
            serde_json::json!({"type": "number", "format": "double"})
        );
        assert_eq!(s(Kind::Float, read)["oneOf"][1]["enum"][0], "NaN");
    }

    #[test]
    fn describe_sets_a_ref_sibling() {
        let r: RefOr<Schema> = Ref::from_schema_name("a.B").into();
        assert_eq!(
            json(describe(r, Some("why".into()))),
            serde_json::json!({"$ref": "#/components/schemas/a.B", "description": "why"})
        );
    }
}
