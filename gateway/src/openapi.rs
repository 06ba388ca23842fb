//! The OpenAPI 3.1 document of the REST API, generated from the same bindings the gateway
//! routes.
//!
//! [`document`] walks the [`Bindings`] read from the descriptors (one operation per binding)
//! and the message types they use, so the spec cannot drift from what is served: paths come
//! from the templates, parameters and schemas from the request and response messages (in the
//! proto3 JSON mapping, with the naming and default handling of [`JsonOptions`]), and every
//! description from the proto comments. What grpc-gateway's `openapiv2` options state
//! (`openapiv2` module) goes in on top, and every value gets an example (`examples`).
//! [`docs_router`] serves it with Swagger UI.
//!
//! The document is built with utoipa's builder API rather than its derive macros, because
//! the API is only known at run time. Output is deterministic (components sorted by name,
//! paths and properties in descriptor order), so a committed copy can be compared with
//! [`to_pretty_json`]'s output.

mod comments;
mod docs;
mod examples;
mod form;
mod openapiv2;
mod params;
mod schema;

use std::collections::BTreeSet;

use http::Method;
use prost_reflect::FieldDescriptor;
use utoipa::openapi::{
    Components, Content, HttpMethod, Info, OpenApi, PathItem, Paths, Ref, RefOr, Response, Schema,
    SecurityRequirement, Server, Tag, Type,
    path::Operation,
    request_body::RequestBody,
    schema::{ArrayBuilder, ObjectBuilder},
    security::{Http, HttpAuthScheme, SecurityScheme},
};

pub use docs::{DOCS_PATH, OPENAPI_PATH, docs_router, docs_router_with};

use crate::constraints::Behavior;
use crate::error::{self, ErrorFormat};
use crate::json::JsonOptions;
use crate::rules::{Binding, Bindings, BodyRule};
use crate::transcode::{http_body, status};
use schema::{Direction, Schemas};

/// The name of the bearer-token security scheme write operations require.
pub const BEARER_AUTH: &str = "bearerAuth";

/// The name of the shared error schema component.
pub const ERROR_SCHEMA: &str = schema::STATUS_SCHEMA;

/// The document's `info` section, as the gateway is told it.
///
/// The API's own `openapiv2_swagger` option (grpc-gateway's) fills what its `info` states in
/// place of `title`, `version` and `description`; `contact` and `license`, which the operator
/// sets with flags, win over the option's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiInfo {
    pub title: String,
    /// The API's version (not the OpenAPI version).
    pub version: String,
    /// A Markdown description of the API.
    pub description: Option<String>,
    /// Who to contact about the API.
    pub contact: Option<ApiContact>,
    pub license: Option<ApiLicense>,
}

/// The `info.contact` of the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiContact {
    /// A person or organisation.
    pub name: Option<String>,
    /// A web page about the contact.
    pub url: Option<String>,
    /// An email address.
    pub email: Option<String>,
}

/// The `info.license` of the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiLicense {
    /// The license's name; an SPDX expression (`MIT OR Apache-2.0`) is also written as its
    /// `identifier`.
    pub name: String,
    /// Where the license text is.
    pub url: Option<String>,
}

/// One HTTP status the gateway can answer with an error, as a shared response component.
struct ErrorResponse {
    status: &'static str,
    component: &'static str,
    description: &'static str,
    /// Whether the description lists the gRPC codes answered with this status: read from
    /// [`crate::error::http_status`], the one table pairing them, so the two cannot differ.
    codes: bool,
}

impl ErrorResponse {
    /// The description, with the codes answered with this status when `codes` is set.
    fn description(&self) -> String {
        let codes = self
            .status
            .parse::<http::StatusCode>()
            .ok()
            .filter(|_| self.codes)
            .map(error::code_names_answered_with)
            .filter(|names| !names.is_empty());
        match codes {
            Some(names) => format!("{} ({}).", self.description, names.join(", ")),
            None => self.description.to_owned(),
        }
    }
}

/// The error answers, by status. The gateway maps gRPC status codes to HTTP statuses and
/// answers with an [`ERROR_SCHEMA`] body; the codes each status stands for are listed.
const ERRORS: &[ErrorResponse] = &[
    ErrorResponse {
        status: "400",
        component: "BadRequest",
        description: "A parameter or the body is malformed or invalid",
        codes: true,
    },
    ErrorResponse {
        status: "401",
        component: "Unauthorized",
        description: "No valid bearer token",
        codes: true,
    },
    ErrorResponse {
        status: "403",
        component: "Forbidden",
        description: "The token does not allow this",
        codes: true,
    },
    ErrorResponse {
        status: "404",
        component: "NotFound",
        description: "No such resource",
        codes: true,
    },
    ErrorResponse {
        status: "409",
        component: "Conflict",
        description: "The resource exists already or changed meanwhile",
        codes: true,
    },
    ErrorResponse {
        status: "413",
        component: "PayloadTooLarge",
        description: "The request body is larger than the gateway accepts.",
        codes: false,
    },
    ErrorResponse {
        status: "414",
        component: "UriTooLong",
        // The gateway's own answer (`Error::UriTooLong`), not a backend code's status.
        description: "The query string is longer than the gateway accepts (INVALID_ARGUMENT).",
        codes: false,
    },
    ErrorResponse {
        status: "415",
        component: "UnsupportedMediaType",
        description: "The request body is not `application/json`.",
        codes: false,
    },
    ErrorResponse {
        status: "429",
        component: "TooManyRequests",
        description: "Too many requests",
        codes: true,
    },
    ErrorResponse {
        status: "500",
        component: "InternalError",
        description: "The backend failed",
        codes: true,
    },
    ErrorResponse {
        status: "503",
        component: "Unavailable",
        description: "The backend cannot be reached",
        codes: true,
    },
    ErrorResponse {
        status: "504",
        component: "GatewayTimeout",
        description: "The backend did not answer in time",
        codes: true,
    },
    ErrorResponse {
        status: "default",
        component: "Error",
        description: "Any other error (for example UNIMPLEMENTED: 501).",
        codes: false,
    },
];

/// Builds the OpenAPI document of `bindings`, as the gateway serves them with `json`.
///
/// One operation per binding, tagged with its service's full name. Bindings OpenAPI cannot
/// express (a custom HTTP method other than HEAD/OPTIONS/TRACE, or a second binding whose
/// OpenAPI path and method equal an earlier one's) are listed in `info.description` instead.
pub fn document(bindings: &Bindings, json: &JsonOptions, info: ApiInfo) -> OpenApi {
    document_with(bindings, json, info, ErrorFormat::Status)
}

/// [`document`], with error bodies in `errors`' shape (`--error-format`), as the gateway that
/// serves it answers them.
pub fn document_with(
    bindings: &Bindings,
    json: &JsonOptions,
    info: ApiInfo,
    errors: ErrorFormat,
) -> OpenApi {
    // First pass: which messages are used in which direction, which decides component names.
    let mut schemas = Schemas::new(json);
    for binding in &bindings.bindings {
        collect(&mut schemas, binding);
    }
    let services: Vec<prost_reflect::ServiceDescriptor> = bindings
        .bindings
        .iter()
        .map(|b| b.method.parent_service().clone())
        .collect();
    let swagger = bindings
        .bindings
        .first()
        .and_then(|b| openapiv2::swagger(b.method.parent_pool(), &services))
        .unwrap_or_default();
    let user_schemes = swagger
        .security_definitions
        .as_ref()
        .map(openapiv2::security_schemes)
        .unwrap_or_default();
    let global_security = openapiv2::requirements(&swagger.security);
    let security = Security {
        // The API's own schemes replace the gateway's bearer default, and with them the
        // default requirements.
        defaults: user_schemes.is_empty() && global_security.is_empty(),
    };

    let mut paths = Paths::new();
    let mut tags: Vec<Tag> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut undocumented = Vec::new();
    for binding in &bindings.bindings {
        let route = format!(
            "`{} {}` ({})",
            binding.http_method,
            binding.template,
            binding.method.full_name()
        );
        let Some(http_method) = http_method(&binding.http_method) else {
            undocumented.push(format!("{route}: OpenAPI 3.1 has no custom HTTP methods."));
            continue;
        };
        let path = binding.template.openapi_path();
        if !seen.insert((path.clone(), binding.http_method.to_string())) {
            undocumented.push(format!(
                "{route}: the same OpenAPI path and method as an earlier binding."
            ));
            continue;
        }
        let service = binding.method.parent_service();
        let tag_options = openapiv2::tag(service).unwrap_or_default();
        let tag = if tag_options.name.is_empty() {
            tag_name(bindings, service)
        } else {
            tag_options.name.clone()
        };
        if !tags.iter().any(|t| t.name == tag) {
            let mut t = Tag::builder()
                .name(tag.clone())
                .description(
                    Some(tag_options.description.clone())
                        .filter(|d| !d.is_empty())
                        .or_else(|| comments::of_service(service)),
                )
                .build();
            openapiv2::add_extensions(
                &mut t.extensions,
                openapiv2::external_docs(tag_options.external_docs.as_ref()),
            );
            tags.push(t);
        }
        let operation = operation(&schemas, binding, json, tag, security);
        for name in operation.tags.iter().flatten() {
            if !tags.iter().any(|t| &t.name == name) {
                tags.push(Tag::new(name));
            }
        }
        let item = paths
            .paths
            .entry(path)
            .or_insert_with(|| PathItem::builder().build());
        set_operation(item, &http_method, operation);
    }

    // The document's own tags: descriptions for the tags above, or tags of their own.
    for listed in &swagger.tags {
        let docs = openapiv2::external_docs(listed.external_docs.as_ref());
        let description = Some(listed.description.clone()).filter(|d| !d.is_empty());
        match tags.iter_mut().find(|t| t.name == listed.name) {
            Some(t) => {
                if description.is_some() {
                    t.description = description;
                }
                if docs.is_some() {
                    t.extensions = None;
                    openapiv2::add_extensions(&mut t.extensions, docs);
                }
            }
            None => {
                let mut t = Tag::builder()
                    .name(listed.name.clone())
                    .description(description)
                    .build();
                openapiv2::add_extensions(&mut t.extensions, docs);
                tags.push(t);
            }
        }
    }

    let stated = swagger.info.clone().unwrap_or_default();
    let or = |option: &str, given: String| {
        if option.trim().is_empty() {
            given
        } else {
            option.to_owned()
        }
    };
    let title = or(&stated.title, info.title);
    let version = or(&stated.version, info.version);
    let mut description = or(&stated.description, info.description.unwrap_or_default());
    if !undocumented.is_empty() {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str("Routed but not documented here:\n");
        for line in &undocumented {
            description.push_str(&format!("\n- {line}"));
        }
    }

    let mut components = Components::builder()
        .schemas_from_iter(schemas.components())
        .schema(ERROR_SCHEMA, error_schema(errors));
    if user_schemes.is_empty() {
        components = components.security_scheme(
            BEARER_AUTH,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The bearer token the service accepts; write operations need it.",
                    ))
                    .build(),
            ),
        );
    }
    for (name, scheme) in user_schemes {
        components = components.security_scheme(name, scheme);
    }
    for e in ERRORS {
        components = components.response(
            e.component,
            Response::builder()
                .description(e.description())
                .content(
                    if errors == ErrorFormat::Problem {
                        "application/problem+json"
                    } else {
                        "application/json"
                    },
                    Content::new(Some(Ref::from_schema_name(ERROR_SCHEMA))),
                )
                .build(),
        );
    }

    let mut doc_info = Info::builder()
        .title(title)
        .version(version)
        .description((!description.is_empty()).then_some(description))
        .terms_of_service(Some(stated.terms_of_service.clone()).filter(|t| !t.is_empty()))
        .build();
    doc_info.contact = contact(info.contact, stated.contact.as_ref());
    doc_info.license = license(info.license, stated.license.as_ref());

    let mut doc = OpenApi::builder()
        .info(doc_info)
        // Relative to the page by default: "Try it out" in /docs calls the gateway that
        // serves it.
        .servers(Some(
            openapiv2::servers(&swagger).unwrap_or_else(|| vec![Server::new("/")]),
        ))
        .paths(paths)
        .components(Some(components.build()))
        .tags(Some(tags))
        .build();
    doc.security = (!global_security.is_empty()).then_some(global_security);
    openapiv2::add_extensions(
        &mut doc.extensions,
        openapiv2::external_docs(swagger.external_docs.as_ref()),
    );
    doc
}

/// How operations without security options of their own are secured.
#[derive(Debug, Clone, Copy)]
struct Security {
    /// The gateway's defaults (bearer token on writes, `security: []` on reads), used when the
    /// API states no security of its own; else the document's requirements apply.
    defaults: bool,
}

/// The contact the flags give, else the one the API's options state.
fn contact(
    given: Option<ApiContact>,
    stated: Option<&openapiv2::Contact>,
) -> Option<utoipa::openapi::info::Contact> {
    let some = |s: &str| Some(s.to_owned()).filter(|s| !s.trim().is_empty());
    let (name, url, email) = match (given, stated) {
        (Some(c), _) => (c.name, c.url, c.email),
        (None, Some(c)) => (some(&c.name), some(&c.url), some(&c.email)),
        (None, None) => return None,
    };
    if name.is_none() && url.is_none() && email.is_none() {
        return None;
    }
    Some(
        utoipa::openapi::info::ContactBuilder::new()
            .name(name)
            .url(url)
            .email(email)
            .build(),
    )
}

/// The license the flags give, else the one the API's options state.
fn license(
    given: Option<ApiLicense>,
    stated: Option<&openapiv2::License>,
) -> Option<utoipa::openapi::info::License> {
    let (name, url) = match (given, stated) {
        (Some(l), _) => (l.name, l.url),
        (None, Some(l)) => (
            l.name.clone(),
            Some(l.url.clone()).filter(|u| !u.trim().is_empty()),
        ),
        (None, None) => return None,
    };
    if name.trim().is_empty() {
        return None;
    }
    let mut out = utoipa::openapi::info::License::new(name.clone());
    // OpenAPI 3.1 allows a URL or an SPDX identifier, not both.
    if url.is_none() && openapiv2::spdx_expression(&name) {
        out.identifier = Some(name);
    }
    out.url = url;
    Some(out)
}

/// The document as pretty-printed JSON with a trailing newline: the committed file's format.
#[expect(
    clippy::expect_used,
    reason = "serializing utoipa's types into a string cannot fail: they are plain data with \
              string map keys, and writing to memory does no I/O"
)]
pub fn to_pretty_json(doc: &OpenApi) -> String {
    let mut out = serde_json::to_string_pretty(doc).expect("an OpenApi serializes to JSON");
    out.push('\n');
    out
}

/// Records the messages a binding reads and writes.
fn collect(schemas: &mut Schemas<'_>, binding: &Binding) {
    match &binding.response_body {
        Some(field) => schemas.visit_field(field, Direction::Read),
        None => schemas.visit_message(&binding.method.output(), Direction::Read),
    }
    match &binding.body {
        BodyRule::None => {}
        BodyRule::Field(field) => schemas.visit_field(field, Direction::Write),
        BodyRule::Whole => {
            let (fields, bound) = body_fields(binding);
            if bound.is_empty() {
                schemas.visit_message(&binding.method.input(), Direction::Write);
            } else {
                schemas.visit_body(&binding.method.input(), &fields, &bound);
            }
        }
    }
}

/// For `body: "*"`: the request fields in the body, and the names of those the path binds.
fn body_fields(binding: &Binding) -> (Vec<FieldDescriptor>, Vec<String>) {
    let (bound, fields): (Vec<_>, Vec<_>) = binding
        .method
        .input()
        .fields()
        .partition(|f| binding.is_path_bound(f.name()));
    (fields, bound.iter().map(|f| f.name().to_owned()).collect())
}

/// A service's tag: its own name (`ArticleService`, which generators turn into a clean module
/// or class name), its full name only when a service of another package has the same name.
fn tag_name(bindings: &Bindings, service: &prost_reflect::ServiceDescriptor) -> String {
    let collides = bindings.bindings.iter().any(|b| {
        let other = b.method.parent_service();
        other.name() == service.name() && other.full_name() != service.full_name()
    });
    if collides {
        service.full_name().to_owned()
    } else {
        service.name().to_owned()
    }
}

fn operation(
    schemas: &Schemas<'_>,
    binding: &Binding,
    json: &JsonOptions,
    tag: String,
    security: Security,
) -> Operation {
    let method = &binding.method;
    let options = openapiv2::operation(method).unwrap_or_default();
    let comment = comments::of_method(method);
    let stated = |text: &str| Some(text.to_owned()).filter(|t| !t.trim().is_empty());
    // The summary is the comment's first sentence: the description goes on from there, so
    // generated docstrings do not say it twice. The options' texts replace the comment's.
    let summary = stated(&options.summary).or_else(|| comment.as_deref().map(comments::summary));
    let mut description = match (stated(&options.description), &comment) {
        (Some(text), _) => text,
        // A summary of its own: the whole comment describes.
        (None, Some(text)) if !options.summary.trim().is_empty() => text.clone(),
        (None, Some(text)) => comments::after_summary(text),
        (None, None) => String::new(),
    };
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str(&format!(
        "gRPC: `{}/{}`.",
        method.parent_service().full_name(),
        method.name()
    ));

    let mut parameters = params::path_params(binding);
    parameters.extend(params::query_params(binding, json));
    for header in options.parameters.iter().flat_map(|p| &p.headers) {
        parameters.push(header_param(header));
    }
    // Partial responses (`transcode::fields`), on every answer that is a message.
    if http_body::raw_response(binding).is_none() {
        parameters.push(
            utoipa::openapi::path::Parameter::builder()
                .name("fields")
                .parameter_in(utoipa::openapi::path::ParameterIn::Query)
                .required(utoipa::openapi::Required::False)
                .description(Some(
                    "A partial response: only these fields of the answer (of each message of a \
                     stream), in Google's syntax: `a,b/c,d(e,f)`. Fields holding their default \
                     value are then left out.",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
        parameters.push(conditional_header(
            "X-Goog-FieldMask",
            "A partial response, as FieldMask paths (`a.b,c`); instead of `fields`.",
        ));
    }
    // Conditional requests (`crate::conditional`): validators on unary reads, If-Match into
    // the AIP-154 `etag` field of writes that have one.
    let unary_read = binding.http_method == Method::GET && !binding.is_streaming();
    if unary_read {
        parameters.push(conditional_header(
            "If-None-Match",
            "Answered 304 Not Modified, without a body, when it names the answer's current ETag.",
        ));
    } else if is_write(&binding.http_method) && crate::conditional::has_etag_field(&method.input())
    {
        parameters.push(conditional_header(
            "If-Match",
            "Sent to the backend in the request's `etag` field (AIP-154), which refuses the \
             write when it names another version.",
        ));
    }

    if method.is_client_streaming() || method.is_server_streaming() {
        description.push_str(&stream_note(binding));
    }

    let raw_request = http_body::raw_target(binding).is_some();
    let request_body = match &binding.body {
        BodyRule::None => None,
        _ if raw_request => Some(binary()),
        BodyRule::Field(field) => Some(schemas.field(field, Direction::Write)),
        BodyRule::Whole => {
            let (_, bound) = body_fields(binding);
            Some(if bound.is_empty() {
                schemas.message(&method.input(), Direction::Write)
            } else {
                schemas.body_object(&method.input(), &bound)
            })
        }
    };
    let has_body = request_body.is_some();
    // An empty body reads as `{}`: only one with a REQUIRED field in it is refused.
    let body_required = !raw_request
        && !method.is_client_streaming()
        && match &binding.body {
            BodyRule::None => false,
            BodyRule::Field(field) => Behavior::of(field).required,
            BodyRule::Whole => body_fields(binding)
                .0
                .iter()
                .any(|f| Behavior::of(f).required),
        };

    let response_schema = match &binding.response_body {
        Some(field) => schemas.field(field, Direction::Read),
        None => schemas.message(&method.output(), Direction::Read),
    };
    let raw_response = http_body::raw_response(binding).is_some();
    let ok = if raw_response {
        Response::builder()
            .description("OK: the raw body, with the content type the method gives it")
            .content("*/*", Content::new(Some(binary())))
            .build()
    } else if method.is_server_streaming() {
        stream_response(response_schema)
    } else if unary_read {
        Response::builder()
            .description("OK")
            .content("application/json", Content::new(Some(response_schema)))
            .header("ETag", etag_header())
            .build()
    } else {
        Response::builder()
            .description("OK")
            .content("application/json", Content::new(Some(response_schema)))
            .build()
    };
    // The status the gateway answers with: the one its options declare, as it serves it.
    let declared = status::declared(method);
    let (success, ok) = match &declared {
        Some(declared) => {
            let description = declared.description.clone().unwrap_or_else(|| {
                declared
                    .status
                    .canonical_reason()
                    .unwrap_or("Success")
                    .to_owned()
            });
            let mut ok = ok;
            ok.description = description;
            if declared.status == http::StatusCode::NO_CONTENT {
                ok.content.clear();
            }
            (declared.status.as_str().to_owned(), ok)
        }
        None => ("200".to_owned(), ok),
    };
    let request_media = if raw_request {
        "*/*"
    } else if method.is_client_streaming() {
        "application/x-ndjson"
    } else {
        "application/json"
    };

    let write = is_write(&binding.http_method);
    let operation_id = match stated(&options.operation_id) {
        // Unique per binding, as the gateway's own ids are.
        Some(id) if binding.binding_index > 0 => format!("{id}{}", binding.binding_index + 1),
        Some(id) => id,
        None => binding.operation_id(),
    };
    let tags = if options.tags.is_empty() {
        vec![tag]
    } else {
        options.tags.clone()
    };
    let mut builder = Operation::builder()
        .tags(Some(tags))
        .summary(summary)
        .description(Some(description))
        .operation_id(Some(operation_id))
        .parameters((!parameters.is_empty()).then_some(parameters))
        .request_body(request_body.map(|schema| {
            let mut body = RequestBody::builder()
                .content(request_media, Content::new(Some(schema)))
                .required(body_required.then_some(utoipa::openapi::Required::True));
            // A body holding a file also takes a form (uploads from browsers and Swagger UI).
            if let Some(content) = form::content(schemas, binding) {
                body = body.content(form::MEDIA, content);
            }
            body.build()
        }))
        .response(success, ok);
    if unary_read {
        builder = builder.response(
            "304",
            Response::builder()
                .description("Not Modified: the If-None-Match tag is the answer's current ETag")
                .header("ETag", etag_header())
                .build(),
        );
    }
    if method_deprecated(binding) || options.deprecated {
        builder = builder.deprecated(Some(utoipa::openapi::Deprecated::True));
    }
    for e in ERRORS {
        let applies = match e.status {
            "401" | "403" | "409" => write,
            "404" => !binding.template.variables().is_empty(),
            "413" | "415" => has_body,
            _ => true,
        };
        if applies {
            builder = builder.response(e.status, Ref::from_response_name(e.component));
        }
    }
    builder = if !options.security.is_empty() {
        builder.securities(Some(openapiv2::requirements(&options.security)))
    } else if !security.defaults {
        // The document's requirements (or none stated) apply.
        builder
    } else if write {
        builder.security(SecurityRequirement::new(BEARER_AUTH, Vec::<String>::new()))
    } else {
        // Said, not left out: linters (redocly's `security-defined`) and readers then know a
        // public operation is public by design.
        builder.securities(Some(Vec::<SecurityRequirement>::new()))
    };
    let mut operation = builder.build();
    openapiv2::add_extensions(
        &mut operation.extensions,
        openapiv2::external_docs(options.external_docs.as_ref()),
    );
    operation
}

/// A conditional request header parameter (`crate::conditional`).
fn conditional_header(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    utoipa::openapi::path::Parameter::builder()
        .name(name)
        .parameter_in(utoipa::openapi::path::ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// The `ETag` response header of a unary read.
fn etag_header() -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "A strong validator of the representation sent (per content coding), or the \
             answer's AIP-154 `etag` field",
        ))
        .build()
}

/// A header parameter an operation's options declare.
fn header_param(header: &openapiv2::HeaderParameter) -> utoipa::openapi::path::Parameter {
    let kind = match header.kind.as_str() {
        "NUMBER" => Type::Number,
        "INTEGER" => Type::Integer,
        "BOOLEAN" => Type::Boolean,
        _ => Type::String,
    };
    let mut schema = ObjectBuilder::new().schema_type(kind);
    if !header.format.is_empty() {
        schema = schema.format(Some(utoipa::openapi::SchemaFormat::Custom(
            header.format.clone(),
        )));
    }
    utoipa::openapi::path::Parameter::builder()
        .name(header.name.clone())
        .parameter_in(utoipa::openapi::path::ParameterIn::Header)
        .required(if header.required {
            utoipa::openapi::Required::True
        } else {
            utoipa::openapi::Required::False
        })
        .description(Some(header.description.clone()).filter(|d| !d.is_empty()))
        .schema(Some(schema))
        .build()
}

/// Raw bytes (`google.api.HttpBody`).
fn binary() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Binary,
        )))
        .into()
}

/// How a streaming operation reads and writes its messages, for its description.
fn stream_note(binding: &Binding) -> String {
    let method = &binding.method;
    let mut note = String::from("\n\nStreaming:");
    if method.is_client_streaming() {
        note.push_str(
            " the request body is a sequence of request messages (newline-delimited or \
             concatenated JSON), each sent on as it arrives;",
        );
    }
    if method.is_server_streaming() {
        note.push_str(
            " each response message is written as it arrives, framed by `Accept`: \
             `application/x-ndjson` (the default; `{\"result\": ...}` lines and a final \
             `{\"error\": ...}` line on failure), `text/event-stream` (`data:` events, \
             `event: error`) or `application/json` (one array);",
        );
    }
    note.push_str(
        " also over a WebSocket (`GET` with `Upgrade: websocket` on this path: one text frame \
         per message, an empty frame ends the requests, close code 4000 + the gRPC code on \
         failure).",
    );
    note
}

/// The 200 of a server stream: one schema per framing, for one message each.
fn stream_response(item: RefOr<Schema>) -> Response {
    let line = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "One line: a message as `result`, or the failure that ended the stream as `error`.",
        ))
        .property("result", item.clone())
        .property("error", Ref::from_schema_name(ERROR_SCHEMA))
        .build();
    let events = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Server-Sent Events: `data: <message JSON>` per message; `event: error` with the \
             error JSON on failure.",
        ))
        .build();
    let array = ArrayBuilder::new().items(item).build();
    Response::builder()
        .description("OK: the response messages as they arrive")
        .content("application/x-ndjson", Content::new(Some(line)))
        .content("text/event-stream", Content::new(Some(events)))
        .content("application/json", Content::new(Some(array)))
        .build()
}

fn method_deprecated(binding: &Binding) -> bool {
    binding
        .method
        .method_descriptor_proto()
        .options
        .as_ref()
        .and_then(|o| o.deprecated)
        .unwrap_or(false)
}

/// Whether a binding changes state, and so needs the bearer token.
fn is_write(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn http_method(method: &Method) -> Option<HttpMethod> {
    Some(match *method {
        Method::GET => HttpMethod::Get,
        Method::PUT => HttpMethod::Put,
        Method::POST => HttpMethod::Post,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        Method::TRACE => HttpMethod::Trace,
        _ => return None,
    })
}

fn set_operation(item: &mut PathItem, method: &HttpMethod, operation: Operation) {
    let slot = match method {
        HttpMethod::Get => &mut item.get,
        HttpMethod::Put => &mut item.put,
        HttpMethod::Post => &mut item.post,
        HttpMethod::Delete => &mut item.delete,
        HttpMethod::Patch => &mut item.patch,
        HttpMethod::Head => &mut item.head,
        HttpMethod::Options => &mut item.options,
        HttpMethod::Trace => &mut item.trace,
    };
    *slot = Some(operation);
}

/// The error body: the gRPC status the gateway got (or made up for its own errors).
fn error_schema(format: ErrorFormat) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(match format {
            ErrorFormat::Problem => {
                "An error, as RFC 9457 problem details: the HTTP status, and the gRPC status \
                 behind it as the extension members `code` and `details`."
            }
            _ => "An error: the gRPC status behind the HTTP status the gateway answered with.",
        }));
    match format {
        ErrorFormat::Status => {}
        ErrorFormat::GrpcGatewayV1 => {
            object = object
                .property(
                    "error",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("The message again (grpc-gateway v1's field).")),
                )
                .required("error");
        }
        ErrorFormat::Problem => {
            for (name, kind, description) in [
                (
                    "type",
                    Type::String,
                    "`about:blank`: the status says it all.",
                ),
                ("title", Type::String, "The HTTP status's reason phrase."),
                ("status", Type::Integer, "The HTTP status code."),
                ("detail", Type::String, "A developer-facing error message."),
            ] {
                object = object
                    .property(
                        name,
                        ObjectBuilder::new()
                            .schema_type(kind)
                            .description(Some(description)),
                    )
                    .required(name);
            }
        }
    }
    let problem = format == ErrorFormat::Problem;
    let object = object.property(
        "code",
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int32,
            )))
            .description(Some(
                "The gRPC status code (3 INVALID_ARGUMENT, 5 NOT_FOUND, 16 UNAUTHENTICATED, ...).",
            )),
    );
    let object = if problem {
        object
    } else {
        object.property(
            "message",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("A developer-facing error message.")),
        )
    };
    let object = object
        .property(
            "details",
            ArrayBuilder::new()
                .items(
                    ObjectBuilder::new()
                        .title(Some("Any"))
                        .property(
                            "@type",
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .description(Some(
                                    "The detail's type URL, e.g. \
                                 `type.googleapis.com/google.rpc.BadRequest`.",
                                )),
                        )
                        .required("@type")
                        .additional_properties(Some(
                            utoipa::openapi::schema::AdditionalProperties::FreeForm(true),
                        )),
                )
                .description(Some(
                    "The status details, each a `google.protobuf.Any` in proto3 JSON \
                     (`@type` and the message's fields).",
                )),
        )
        // The gateway writes them all, `details` as `[]` when there are none.
        .required("code");
    let object = if problem {
        object
    } else {
        object.required("message")
    };
    object.required("details").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The article contract's document: these tests read its paths.
    fn doc() -> serde_json::Value {
        let pool = match prost_reflect::DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET)
        {
            Ok(pool) => pool,
            Err(e) => panic!("{e}"),
        };
        let doc = document(
            &Bindings::from_pool(&pool),
            &JsonOptions::default(),
            ApiInfo::default(),
        );
        match serde_json::to_value(&doc) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn writes_need_the_bearer_token_and_reads_do_not() {
        let doc = doc();
        assert_eq!(
            doc["paths"]["/articles"]["get"]["security"],
            serde_json::json!([])
        );
        assert_eq!(
            doc["paths"]["/articles"]["post"]["security"],
            serde_json::json!([{"bearerAuth": []}])
        );
        assert!(doc["paths"]["/articles"]["get"]["responses"]["401"].is_null());
        assert!(doc["paths"]["/articles"]["get"]["responses"]["404"].is_null());
        assert!(doc["paths"]["/articles/{pk}"]["get"]["responses"]["404"].is_object());
        assert!(doc["paths"]["/articles"]["post"]["responses"]["415"].is_object());
    }

    #[test]
    fn path_bound_fields_leave_the_body() {
        let doc = doc();
        assert_eq!(
            doc["paths"]["/articles/{pk}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
                ["$ref"],
            "#/components/schemas/UpdateArticleRequest-Body"
        );
        let body = &doc["components"]["schemas"]["UpdateArticleRequest-Body"];
        assert!(body["properties"]["pk"].is_null(), "{body}");
        assert!(body["properties"]["title"].is_object(), "{body}");
        assert_eq!(body["additionalProperties"], false);
    }
}
