//! grpc-gateway's OpenAPI options (`grpc.gateway.protoc_gen_openapiv2.options`, the ones
//! protoc-gen-openapiv2 reads), read from the descriptors and translated into OpenAPI 3.1.
//!
//! A proto written for protoc-gen-openapiv2 says in these options what its OpenAPI document
//! holds: `openapiv2_swagger` (file: info, servers, security, tags, external docs),
//! `openapiv2_operation` (method), `openapiv2_tag` (service), `openapiv2_schema` (message) and
//! `openapiv2_field` (field). Each is looked up by name in the descriptors' own pool, the way
//! `google.api.http` is, so it works whatever the descriptors came from (embedded, a file,
//! reflection) and whichever copy of the option definitions they were compiled with; a pool
//! without them yields nothing and costs nothing.
//!
//! The option messages are read through their proto3 JSON form into plain serde structs
//! (missing fields default), so no generated code for them is needed and fields a newer
//! grpc-gateway adds are ignored. OpenAPI 2.0 texts that hold JSON (`example`, `default`) are
//! parsed into values; one that is not valid JSON is kept as a string, as
//! protoc-gen-openapiv2 would copy it verbatim.

use std::collections::BTreeMap;

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, MessageDescriptor, MethodDescriptor,
    SerializeOptions, ServiceDescriptor,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::Number;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::{
    RefOr, Schema, SchemaFormat, SecurityRequirement, Server,
    security::{
        AuthorizationCode, ClientCredentials, Flow, Implicit, OAuth2, Password, SecurityScheme,
    },
};

/// The package of the options.
const PACKAGE: &str = "grpc.gateway.protoc_gen_openapiv2.options";

/// The document's options (`openapiv2_swagger`, on a file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Swagger {
    pub(crate) info: Option<Info>,
    pub(crate) host: String,
    pub(crate) base_path: String,
    pub(crate) schemes: Vec<String>,
    pub(crate) security_definitions: Option<SecurityDefinitions>,
    pub(crate) security: Vec<Requirement>,
    pub(crate) tags: Vec<Tag>,
    pub(crate) external_docs: Option<Docs>,
}

/// `Info`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Info {
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) terms_of_service: String,
    pub(crate) contact: Option<Contact>,
    pub(crate) license: Option<License>,
    pub(crate) version: String,
}

/// `Contact`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Contact {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) email: String,
}

/// `License`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct License {
    pub(crate) name: String,
    pub(crate) url: String,
}

/// `ExternalDocumentation`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Docs {
    pub(crate) description: String,
    pub(crate) url: String,
}

/// `SecurityDefinitions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SecurityDefinitions {
    pub(crate) security: BTreeMap<String, Scheme>,
}

/// `SecurityScheme`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Scheme {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) description: String,
    pub(crate) name: String,
    #[serde(rename = "in")]
    pub(crate) location: String,
    pub(crate) flow: String,
    pub(crate) authorization_url: String,
    pub(crate) token_url: String,
    pub(crate) scopes: Option<Scopes>,
}

/// `Scopes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Scopes {
    pub(crate) scope: BTreeMap<String, String>,
}

/// `SecurityRequirement`: schemes required together.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Requirement {
    pub(crate) security_requirement: BTreeMap<String, RequirementValue>,
}

/// `SecurityRequirement.SecurityRequirementValue`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RequirementValue {
    pub(crate) scope: Vec<String>,
}

/// `Tag` (on a service, or listed in the document's options).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Tag {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) external_docs: Option<Docs>,
}

/// `Operation` (on a method).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Operation {
    pub(crate) tags: Vec<String>,
    pub(crate) summary: String,
    pub(crate) description: String,
    pub(crate) external_docs: Option<Docs>,
    pub(crate) operation_id: String,
    pub(crate) deprecated: bool,
    pub(crate) security: Vec<Requirement>,
    pub(crate) parameters: Option<Parameters>,
}

/// `Parameters`: header parameters of an operation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Parameters {
    pub(crate) headers: Vec<HeaderParameter>,
}

/// `HeaderParameter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct HeaderParameter {
    pub(crate) name: String,
    pub(crate) description: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) format: String,
    pub(crate) required: bool,
}

/// `Schema` (on a message).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct MessageSchema {
    pub(crate) json_schema: Option<JsonSchema>,
    pub(crate) read_only: bool,
    pub(crate) external_docs: Option<Docs>,
    pub(crate) example: String,
}

/// `JSONSchema` (on a field, or a message's `json_schema`). Zero numbers and empty texts are
/// "not set", as protoc-gen-openapiv2 reads them (proto3 fields without presence).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct JsonSchema {
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) default: String,
    pub(crate) read_only: bool,
    pub(crate) example: String,
    pub(crate) multiple_of: f64,
    pub(crate) maximum: f64,
    pub(crate) exclusive_maximum: bool,
    pub(crate) minimum: f64,
    pub(crate) exclusive_minimum: bool,
    pub(crate) max_length: u64,
    pub(crate) min_length: u64,
    pub(crate) pattern: String,
    pub(crate) max_items: u64,
    pub(crate) min_items: u64,
    pub(crate) unique_items: bool,
    pub(crate) required: Vec<String>,
    pub(crate) format: String,
    #[serde(rename = "enum")]
    pub(crate) enum_values: Vec<String>,
}

/// Reads the extension `name` (in [`PACKAGE`]) of `options` into `T`.
fn read<T: DeserializeOwned>(
    pool: &DescriptorPool,
    name: &str,
    options: &DynamicMessage,
) -> Option<T> {
    let ext = pool.get_extension_by_name(&format!("{PACKAGE}.{name}"))?;
    if !options.has_extension(&ext) {
        return None;
    }
    let value = options.get_extension(&ext);
    let message = value.as_message()?;
    // 64-bit lengths as numbers, so the structs read them as such.
    let json = message
        .serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new().stringify_64_bit_integers(false),
        )
        .ok()?;
    match serde_json::from_value(json) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(option = name, error = %e, "openapiv2 option not understood; ignored");
            None
        }
    }
}

/// The document options: those of the first file (in pool order) that defines one of
/// `services` and carries them, else of any file that does.
pub(crate) fn swagger<'a>(
    pool: &DescriptorPool,
    services: impl IntoIterator<Item = &'a ServiceDescriptor>,
) -> Option<Swagger> {
    let of =
        |file: &prost_reflect::FileDescriptor| read(pool, "openapiv2_swagger", &file.options());
    for service in services {
        if let Some(found) = of(&service.parent_file()) {
            return Some(found);
        }
    }
    pool.files().find_map(|f| of(&f))
}

/// The options of a method's operation.
pub(crate) fn operation(method: &MethodDescriptor) -> Option<Operation> {
    read(
        method.parent_pool(),
        "openapiv2_operation",
        &method.options(),
    )
}

/// The options of a service's tag.
pub(crate) fn tag(service: &ServiceDescriptor) -> Option<Tag> {
    read(service.parent_pool(), "openapiv2_tag", &service.options())
}

/// The options of a message's schema.
pub(crate) fn message(message: &MessageDescriptor) -> Option<MessageSchema> {
    read(
        message.parent_pool(),
        "openapiv2_schema",
        &message.options(),
    )
}

/// The options of a field's schema.
pub(crate) fn field(field: &FieldDescriptor) -> Option<JsonSchema> {
    read(field.parent_pool(), "openapiv2_field", &field.options())
}

/// A text that holds JSON, as a value: the parsed JSON, else the text itself.
pub(crate) fn json_text(text: &str) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())))
}

fn non_empty(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.to_owned())
}

/// External docs (when they have the URL OpenAPI requires), as the `externalDocs` entry of
/// an object's extensions: utoipa's own type writes a missing description as `null`, which
/// the OpenAPI schema refuses, and schemas have no field for them.
pub(crate) fn external_docs(docs: Option<&Docs>) -> Option<Extensions> {
    let docs = docs?;
    let url = non_empty(&docs.url)?;
    let mut value = json!({ "url": url });
    if let Some(d) = non_empty(&docs.description) {
        value["description"] = Value::String(d);
    }
    Some(Extensions::from_iter([("externalDocs", value)]))
}

/// Adds `docs` (from [`external_docs`]) to an object's extensions.
pub(crate) fn add_extensions(target: &mut Option<Extensions>, docs: Option<Extensions>) {
    if let Some(docs) = docs {
        target.get_or_insert_with(Extensions::default).merge(docs);
    }
}

fn number(n: f64) -> Number {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        // Whole and well inside isize on 64-bit targets: written without a decimal point.
        Number::Int(n as isize)
    } else {
        Number::Float(n)
    }
}

fn format(text: &str) -> SchemaFormat {
    serde_json::from_value(Value::String(text.to_owned()))
        .unwrap_or_else(|_| SchemaFormat::Custom(text.to_owned()))
}

/// Title, description, example and default of `js` onto `schema`, whose type (an object, an
/// array, a `oneOf`) has those four fields under the same names but no common trait.
macro_rules! annotate {
    ($schema:expr, $js:expr) => {
        if let Some(t) = non_empty(&$js.title) {
            $schema.title = Some(t);
        }
        if let Some(d) = non_empty(&$js.description) {
            $schema.description = Some(d);
        }
        if let Some(e) = json_text(&$js.example) {
            $schema.examples = vec![e];
        }
        if let Some(d) = json_text(&$js.default) {
            $schema.default = Some(d);
        }
    };
}

/// Applies a field's (or message's) JSON Schema keywords to `schema`.
///
/// On an array (a repeated field) the value keywords (format, pattern, bounds, lengths, enum)
/// go to its items, the others to the array itself, as protoc-gen-openapiv2 places them.
pub(crate) fn apply(schema: &mut RefOr<Schema>, js: &JsonSchema) {
    match schema {
        RefOr::Ref(r) => {
            // A `$ref` takes only a description beside it.
            if let Some(d) = non_empty(&js.description) {
                r.description = d;
            }
        }
        RefOr::T(Schema::Object(o)) => {
            apply_value(o, js);
            apply_common_object(o, js);
        }
        RefOr::T(Schema::Array(a)) => {
            annotate!(a, js);
            if js.max_items > 0 {
                a.max_items = Some(js.max_items as usize);
            }
            if js.min_items > 0 {
                a.min_items = Some(js.min_items as usize);
            }
            if js.unique_items {
                a.unique_items = true;
            }
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(item) = &mut a.items
                && let RefOr::T(Schema::Object(o)) = item.as_mut()
            {
                apply_value(o, js);
            }
        }
        RefOr::T(Schema::OneOf(o)) => {
            annotate!(o, js);
            // Bounds and formats belong to the value's own branch (a float's number, not its
            // "NaN" strings nor the null).
            if let Some(RefOr::T(Schema::Object(branch))) = o.items.first_mut() {
                apply_value(branch, js);
            }
        }
        _ => {}
    }
}

/// The keywords of one value: format, pattern, bounds, lengths, enum.
fn apply_value(o: &mut utoipa::openapi::Object, js: &JsonSchema) {
    if let Some(f) = non_empty(&js.format) {
        o.format = Some(format(&f));
    }
    if let Some(p) = non_empty(&js.pattern) {
        o.pattern = Some(p);
    }
    if js.maximum != 0.0 {
        if js.exclusive_maximum {
            o.exclusive_maximum = Some(number(js.maximum));
            o.maximum = None;
        } else {
            o.maximum = Some(number(js.maximum));
        }
    }
    if js.minimum != 0.0 {
        if js.exclusive_minimum {
            o.exclusive_minimum = Some(number(js.minimum));
            o.minimum = None;
        } else {
            o.minimum = Some(number(js.minimum));
        }
    }
    if js.multiple_of != 0.0 {
        o.multiple_of = Some(number(js.multiple_of));
    }
    if js.max_length > 0 {
        o.max_length = Some(js.max_length as usize);
    }
    if js.min_length > 0 {
        o.min_length = Some(js.min_length as usize);
    }
    if !js.enum_values.is_empty() {
        o.enum_values = Some(
            js.enum_values
                .iter()
                .map(|v| Value::String(v.clone()))
                .collect(),
        );
    }
}

/// The keywords that describe: title, description, example, default, readOnly.
fn apply_common_object(o: &mut utoipa::openapi::Object, js: &JsonSchema) {
    annotate!(o, js);
    if js.read_only {
        o.read_only = Some(true);
    }
}

/// Applies a message's schema options to its component.
pub(crate) fn apply_message(
    o: &mut utoipa::openapi::Object,
    options: &MessageSchema,
    json_name: impl Fn(&str) -> Option<String>,
) {
    if let Some(js) = &options.json_schema {
        apply_common_object(o, js);
        for name in &js.required {
            // Named by proto or JSON name: required by the name the schema lists.
            let listed = json_name(name).unwrap_or_else(|| name.clone());
            if o.properties.contains_key(&listed) && !o.required.contains(&listed) {
                o.required.push(listed);
            }
        }
    }
    if let Some(e) = json_text(&options.example) {
        o.examples = vec![e];
    }
    if options.read_only {
        o.read_only = Some(true);
    }
    add_extensions(
        &mut o.extensions,
        external_docs(options.external_docs.as_ref()),
    );
}

/// The servers the options name: `scheme://host/base_path` per HTTP scheme (https when none
/// is given), or the base path alone, relative to the document, when there is no host.
pub(crate) fn servers(swagger: &Swagger) -> Option<Vec<Server>> {
    let base = swagger.base_path.trim_end_matches('/');
    if swagger.host.is_empty() {
        return (!base.is_empty()).then(|| vec![Server::new(base)]);
    }
    let mut schemes: Vec<&str> = swagger
        .schemes
        .iter()
        .filter_map(|s| match s.as_str() {
            "HTTP" => Some("http"),
            "HTTPS" => Some("https"),
            _ => None,
        })
        .collect();
    if schemes.is_empty() {
        schemes.push("https");
    }
    Some(
        schemes
            .into_iter()
            .map(|s| Server::new(format!("{s}://{}{base}", swagger.host)))
            .collect(),
    )
}

/// The security schemes, in OpenAPI 3.1 form: basic is HTTP basic, an API key stays one,
/// OAuth2's `application` flow is `clientCredentials` and `accessCode` is
/// `authorizationCode`.
pub(crate) fn security_schemes(defs: &SecurityDefinitions) -> Vec<(String, SecurityScheme)> {
    defs.security
        .iter()
        .filter_map(|(name, s)| {
            let mut v = match s.kind.as_str() {
                "TYPE_BASIC" => json!({"type": "http", "scheme": "basic"}),
                "TYPE_API_KEY" => json!({
                    "type": "apiKey",
                    "name": s.name,
                    "in": if s.location == "IN_QUERY" { "query" } else { "header" },
                }),
                "TYPE_OAUTH2" => {
                    // Built as utoipa's types: its flows do not deserialize by their key.
                    let scopes = || {
                        utoipa::openapi::security::Scopes::from_iter(
                            s.scopes
                                .iter()
                                .flat_map(|s| &s.scope)
                                .map(|(k, v)| (k.clone(), v.clone())),
                        )
                    };
                    let flow = match s.flow.as_str() {
                        "FLOW_IMPLICIT" => {
                            Flow::Implicit(Implicit::new(&s.authorization_url, scopes()))
                        }
                        "FLOW_PASSWORD" => Flow::Password(Password::new(&s.token_url, scopes())),
                        "FLOW_APPLICATION" => {
                            Flow::ClientCredentials(ClientCredentials::new(&s.token_url, scopes()))
                        }
                        "FLOW_ACCESS_CODE" => Flow::AuthorizationCode(AuthorizationCode::new(
                            &s.authorization_url,
                            &s.token_url,
                            scopes(),
                        )),
                        _ => return None,
                    };
                    let oauth = match non_empty(&s.description) {
                        Some(d) => OAuth2::with_description([flow], d),
                        None => OAuth2::new([flow]),
                    };
                    return Some((name.clone(), SecurityScheme::OAuth2(oauth)));
                }
                _ => return None,
            };
            if let Some(d) = non_empty(&s.description) {
                v["description"] = Value::String(d);
            }
            match serde_json::from_value(v) {
                Ok(scheme) => Some((name.clone(), scheme)),
                Err(e) => {
                    tracing::warn!(scheme = name, error = %e, "openapiv2 security scheme ignored");
                    None
                }
            }
        })
        .collect()
}

/// Security requirements (alternatives), in OpenAPI form.
pub(crate) fn requirements(reqs: &[Requirement]) -> Vec<SecurityRequirement> {
    reqs.iter()
        .map(|r| {
            let v: serde_json::Map<String, Value> = r
                .security_requirement
                .iter()
                .map(|(name, value)| (name.clone(), json!(value.scope)))
                .collect();
            serde_json::from_value(Value::Object(v)).unwrap_or_default()
        })
        .collect()
}

/// Whether a license name is an SPDX expression (`MIT OR Apache-2.0`), which OpenAPI 3.1
/// takes as the license's `identifier`.
pub(crate) fn spdx_expression(name: &str) -> bool {
    // Identifiers and operators alternate: `MIT OR Apache-2.0`, not `BSD 3-Clause License`.
    let tokens: Vec<&str> = name
        .split_whitespace()
        .map(|t| t.trim_matches(|c| c == '(' || c == ')'))
        .filter(|t| !t.is_empty())
        .collect();
    tokens.len() % 2 == 1
        && tokens.iter().enumerate().all(|(i, token)| {
            let operator = matches!(*token, "AND" | "OR" | "WITH");
            if i % 2 == 1 {
                operator
            } else {
                !operator
                    && token
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_texts_are_parsed_and_other_texts_kept() {
        assert_eq!(json_text("1"), Some(json!(1)));
        assert_eq!(json_text("\"a\""), Some(json!("a")));
        assert_eq!(json_text("{\"a\": [1]}"), Some(json!({"a": [1]})));
        assert_eq!(json_text("plain"), Some(json!("plain")));
        assert_eq!(json_text("  "), None);
    }

    #[test]
    fn spdx_expressions_are_told_from_license_names() {
        assert!(spdx_expression("MIT OR Apache-2.0"));
        assert!(spdx_expression("(MIT AND BSD-3-Clause)"));
        assert!(!spdx_expression("BSD 3-Clause License"));
    }
}
