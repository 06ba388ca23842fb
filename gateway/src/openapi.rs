//! The OpenAPI 3.1 document of the REST API, generated from the same bindings the gateway
//! routes.
//!
//! [`document`] walks the [`Bindings`] read from the descriptors (one operation per binding)
//! and the message types they use, so the spec cannot drift from what is served: paths come
//! from the templates, parameters and schemas from the request and response messages (in the
//! proto3 JSON mapping, with the naming and default handling of [`JsonOptions`]), and every
//! description from the proto comments. [`docs_router`] serves it with Swagger UI.
//!
//! The document is built with utoipa's builder API rather than its derive macros, because
//! the API is only known at run time. Output is deterministic (components sorted by name,
//! paths and properties in descriptor order), so a committed copy can be compared with
//! [`to_pretty_json`]'s output.

mod comments;
mod docs;
mod params;
mod schema;

use std::collections::BTreeSet;

use http::Method;
use prost_reflect::{DescriptorPool, FieldDescriptor};
use utoipa::openapi::{
    Components, Content, HttpMethod, Info, OpenApi, PathItem, Paths, Ref, RefOr, Response, Schema,
    SecurityRequirement, Server, Tag, Type,
    path::Operation,
    request_body::RequestBody,
    schema::{ArrayBuilder, ObjectBuilder},
    security::{Http, HttpAuthScheme, SecurityScheme},
};

pub use docs::{DOCS_PATH, OPENAPI_PATH, docs_router};

use crate::error::ErrorFormat;
use crate::json::JsonOptions;
use crate::rules::{Binding, Bindings, BodyRule};
use crate::transcode::http_body;
use schema::{Direction, Schemas};

/// The name of the bearer-token security scheme write operations require.
pub const BEARER_AUTH: &str = "bearerAuth";

/// The name of the shared error schema component.
pub const ERROR_SCHEMA: &str = schema::STATUS_SCHEMA;

/// The document's `info` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiInfo {
    /// The API's title.
    pub title: String,
    /// The API's version (not the OpenAPI version).
    pub version: String,
    /// A Markdown description of the API.
    pub description: Option<String>,
}

impl ApiInfo {
    /// The article API's info: title `articles`, this crate's version.
    pub fn articles() -> Self {
        Self {
            title: "articles".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: Some(
                "The article service's REST interface. Each operation is transcoded to the gRPC \
                 method named in its description, following the `google.api.http` rules of \
                 `proto/article/v1/article.proto`; bodies use the proto3 JSON mapping."
                    .to_owned(),
            ),
        }
    }
}

/// One HTTP status the gateway can answer with an error, as a shared response component.
struct ErrorResponse {
    status: &'static str,
    component: &'static str,
    description: &'static str,
}

/// The error answers, by status. The gateway maps gRPC status codes to HTTP statuses and
/// answers with an [`ERROR_SCHEMA`] body; the codes each status stands for are listed.
const ERRORS: &[ErrorResponse] = &[
    ErrorResponse {
        status: "400",
        component: "BadRequest",
        description: "A parameter or the body is malformed or invalid \
                      (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE).",
    },
    ErrorResponse {
        status: "401",
        component: "Unauthorized",
        description: "No valid bearer token (UNAUTHENTICATED).",
    },
    ErrorResponse {
        status: "403",
        component: "Forbidden",
        description: "The token does not allow this (PERMISSION_DENIED).",
    },
    ErrorResponse {
        status: "404",
        component: "NotFound",
        description: "No such resource (NOT_FOUND).",
    },
    ErrorResponse {
        status: "409",
        component: "Conflict",
        description: "The resource exists already or changed meanwhile (ALREADY_EXISTS, ABORTED).",
    },
    ErrorResponse {
        status: "413",
        component: "PayloadTooLarge",
        description: "The request body is larger than the gateway accepts.",
    },
    ErrorResponse {
        status: "414",
        component: "UriTooLong",
        description: "The query string is longer than the gateway accepts (INVALID_ARGUMENT).",
    },
    ErrorResponse {
        status: "415",
        component: "UnsupportedMediaType",
        description: "The request body is not `application/json`.",
    },
    ErrorResponse {
        status: "429",
        component: "TooManyRequests",
        description: "Too many requests (RESOURCE_EXHAUSTED).",
    },
    ErrorResponse {
        status: "500",
        component: "InternalError",
        description: "The backend failed (INTERNAL, UNKNOWN, DATA_LOSS).",
    },
    ErrorResponse {
        status: "503",
        component: "Unavailable",
        description: "The backend cannot be reached (UNAVAILABLE).",
    },
    ErrorResponse {
        status: "504",
        component: "GatewayTimeout",
        description: "The backend did not answer in time (DEADLINE_EXCEEDED).",
    },
    ErrorResponse {
        status: "default",
        component: "Error",
        description: "Any other error (for example UNIMPLEMENTED: 501).",
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
        let tag = tag_name(bindings, service);
        if !tags.iter().any(|t| t.name == tag) {
            tags.push(
                Tag::builder()
                    .name(tag.clone())
                    .description(comments::of_service(service))
                    .build(),
            );
        }
        let operation = operation(&schemas, binding, json, tag);
        let item = paths
            .paths
            .entry(path)
            .or_insert_with(|| PathItem::builder().build());
        set_operation(item, &http_method, operation);
    }

    let mut description = info.description.unwrap_or_default();
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
        .schema(ERROR_SCHEMA, error_schema(errors))
        .security_scheme(
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
    for e in ERRORS {
        components = components.response(
            e.component,
            Response::builder()
                .description(e.description)
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

    OpenApi::builder()
        .info(
            Info::builder()
                .title(info.title)
                .version(info.version)
                .description((!description.is_empty()).then_some(description))
                .build(),
        )
        // Relative to the page: "Try it out" in /docs calls the gateway that serves it.
        .servers(Some([Server::new("/")]))
        .paths(paths)
        .components(Some(components.build()))
        .tags(Some(tags))
        .build()
}

/// The OpenAPI document of the article API as the embedded descriptors describe it.
pub fn articles_document(json: &JsonOptions) -> Result<OpenApi, prost_reflect::DescriptorError> {
    let pool = DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET)?;
    Ok(document(
        &Bindings::from_pool(&pool),
        json,
        ApiInfo::articles(),
    ))
}

/// The document as pretty-printed JSON with a trailing newline: the committed file's format.
pub fn to_pretty_json(doc: &OpenApi) -> String {
    // Serializing utoipa's types into a string cannot fail: they are plain data with string map
    // keys, and writing to memory does no I/O.
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
                for field in &fields {
                    schemas.visit_field(field, Direction::Write);
                }
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
) -> Operation {
    let method = &binding.method;
    let comment = comments::of_method(method);
    // The summary is the comment's first sentence: the description goes on from there, so
    // generated docstrings do not say it twice.
    let mut description = comment
        .as_deref()
        .map(comments::after_summary)
        .unwrap_or_default();
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

    if method.is_client_streaming() || method.is_server_streaming() {
        description.push_str(&stream_note(binding));
    }

    let raw_request = http_body::raw_target(binding).is_some();
    let request_body = match &binding.body {
        BodyRule::None => None,
        _ if raw_request => Some(binary()),
        BodyRule::Field(field) => Some(schemas.field(field, Direction::Write)),
        BodyRule::Whole => {
            let (fields, bound) = body_fields(binding);
            Some(if bound.is_empty() {
                schemas.message(&method.input(), Direction::Write)
            } else {
                schemas.body_object(&method.input(), &fields, &bound)
            })
        }
    };
    let has_body = request_body.is_some();

    let response_schema = match &binding.response_body {
        Some(field) => schemas.field(field, Direction::Read),
        None => schemas.message(&method.output(), Direction::Read),
    };
    let raw_response = binding.response_body.is_none() && http_body::is_http_body(&method.output());
    let ok = if raw_response {
        Response::builder()
            .description("OK: the raw body, with the content type the method gives it")
            .content("*/*", Content::new(Some(binary())))
            .build()
    } else if method.is_server_streaming() {
        stream_response(response_schema)
    } else {
        Response::builder()
            .description("OK")
            .content("application/json", Content::new(Some(response_schema)))
            .build()
    };
    let request_media = if raw_request {
        "*/*"
    } else if method.is_client_streaming() {
        "application/x-ndjson"
    } else {
        "application/json"
    };

    let write = is_write(&binding.http_method);
    let mut builder = Operation::builder()
        .tag(tag)
        .summary(comment.as_deref().map(comments::summary))
        .description(Some(description))
        .operation_id(Some(binding.operation_id()))
        .parameters((!parameters.is_empty()).then_some(parameters))
        .request_body(request_body.map(|schema| {
            RequestBody::builder()
                .content(request_media, Content::new(Some(schema)))
                .required(Some(utoipa::openapi::Required::True))
                .build()
        }))
        .response("200", ok);
    if method_deprecated(binding) {
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
    builder = if write {
        builder.security(SecurityRequirement::new(BEARER_AUTH, Vec::<String>::new()))
    } else {
        // Said, not left out: linters (redocly's `security-defined`) and readers then know a
        // public operation is public by design.
        builder.securities(Some(Vec::<SecurityRequirement>::new()))
    };
    builder.build()
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

    fn doc() -> serde_json::Value {
        let doc = match articles_document(&JsonOptions::default()) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
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
        let body = &doc["paths"]["/articles/{pk}"]["patch"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert!(body["properties"]["pk"].is_null(), "{body}");
        assert!(body["properties"]["title"].is_object(), "{body}");
        assert_eq!(body["additionalProperties"], false);
    }
}
