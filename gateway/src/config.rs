//! The command line of `articles-gateway` (clap derive). Every flag can also be set through an
//! `ARTICLES_GATEWAY_*` environment variable; repeatable flags take a comma-separated list there.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    backend::{DEFAULT_MAX_RESPONSE_BYTES, default_connections},
    error::ErrorFormat,
    json::{JsonNames, JsonOptions},
    limits::{
        DEFAULT_BACKEND_STREAM_CONNECTIONS, DEFAULT_BODY_LIMIT, DEFAULT_CONCURRENCY_LIMIT,
        DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_METADATA_BYTES,
        DEFAULT_MAX_QUERY_LENGTH, DEFAULT_MIN_BODY_RATE, DEFAULT_RESPONSE_BUFFER_LIMIT,
        DEFAULT_STREAM_LIMIT,
    },
    rules::{MappingOptions, ServiceFilter},
    transcode::Unknown,
};

/// Serves a gRPC API as REST/JSON, routed by the `google.api.http` annotations of its
/// descriptors.
///
/// Without a subcommand, `serve` runs.
#[derive(Debug, Parser)]
#[command(
    name = "articles-gateway",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The options of `serve`, used when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at start: boxing the flags would buy nothing"
)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve(ServeArgs),
    /// Print the OpenAPI document of the API, then exit.
    Openapi(ApiArgs),
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on for HTTP.
    #[arg(
        long,
        env = "ARTICLES_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Which API and how it is written.
    #[command(flatten)]
    pub api: ApiArgs,
    /// How long a connection attempt to the backend may take before calls fail with 503.
    #[arg(long, env = "ARTICLES_GATEWAY_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// How often each backend's `grpc.health.v1` check is asked; a backend answering anything
    /// but SERVING (or UNIMPLEMENTED: no health service) gets no calls until it does again.
    #[arg(long, env = "ARTICLES_GATEWAY_HEALTH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub health_interval: Duration,
    /// HTTP/2 connections to each backend for calls (default: one per core, 2 to 8), used in
    /// turn, so a connection that closes takes only its share of the calls. Health checks
    /// have one more of their own.
    #[arg(long, env = "ARTICLES_GATEWAY_BACKEND_CONNECTIONS", default_value_t = default_connections())]
    pub backend_connections: usize,
    /// The most HTTP/2 connections to each backend for streams (default 16), opened as
    /// streams need them, each carrying as many streams as the backend allows (100 at most).
    /// Streams never use the connections of unary calls, so they cannot starve them; a stream
    /// finding every slot in use is answered 503 UNAVAILABLE at once.
    #[arg(long, env = "ARTICLES_GATEWAY_BACKEND_STREAM_CONNECTIONS", default_value_t = DEFAULT_BACKEND_STREAM_CONNECTIONS)]
    pub backend_stream_connections: usize,
    /// Health checks without an answer, or calls failing at the transport, in a row that take
    /// a backend out (default 3). A NOT_SERVING answer takes it out at once.
    #[arg(long, env = "ARTICLES_GATEWAY_FAILURE_THRESHOLD", default_value_t = 3)]
    pub failure_threshold: u32,
    /// The largest share of the backends that call failures may take out, in percent (default
    /// 50; one backend at least). With every backend out, calls go to all of them.
    #[arg(
        long,
        env = "ARTICLES_GATEWAY_MAX_EJECTION_PERCENT",
        default_value_t = 50
    )]
    pub max_ejection_percent: u8,
    /// The service name the backends' health check asks about (empty: the whole server).
    #[arg(long, env = "ARTICLES_GATEWAY_HEALTH_SERVICE", default_value = "")]
    pub health_service: String,
    /// How REST is served.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// How REST is served: deadlines, limits, timeouts, TLS, CORS and request handling. The same
/// flags serve the in-process REST of `articles-service serve --rest`.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// The deadline of a call when the client sends no `Grpc-Timeout` (`30s`, `500ms`, `2m`;
    /// default 30s). Past it: 504 with code 4 DEADLINE_EXCEEDED. At shutdown, in-flight requests
    /// get this long (plus 1s) to finish.
    #[arg(long, env = "ARTICLES_GATEWAY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The deadline of a streaming call when the client sends no `Grpc-Timeout` (default 1h):
    /// the whole stream must end within it.
    #[arg(long, env = "ARTICLES_GATEWAY_STREAM_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub stream_timeout: Duration,
    /// How long a Server-Sent Events stream may stay silent before the gateway writes a
    /// `: keep-alive` comment line (default 15s; 0 turns it off), so that proxies and load
    /// balancers, which cut streams idle for 60s, keep a caught-up watcher open.
    #[arg(long, env = "ARTICLES_GATEWAY_SSE_KEEPALIVE", default_value = "15s", value_parser = parse_duration)]
    pub sse_keepalive: Duration,
    /// The largest request body accepted, in bytes (default 1 MiB; larger: 413 with code 8
    /// RESOURCE_EXHAUSTED).
    #[arg(long, env = "ARTICLES_GATEWAY_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// The longest query string accepted, in bytes as sent (default 8 KiB; longer: 414 with
    /// code 3 INVALID_ARGUMENT). At most 65,534: a whole URI is at most that long (the `http`
    /// crate's limit), longer ones get hyper's own 414, with an empty body.
    #[arg(long, env = "ARTICLES_GATEWAY_MAX_QUERY_LENGTH", default_value_t = DEFAULT_MAX_QUERY_LENGTH, value_parser = parse_query_length)]
    pub max_query_length: usize,
    /// The largest request head (request line and headers) accepted, in bytes (default 64 KiB;
    /// at least 8 KiB over HTTP/1). Larger: hyper's own 431, with an empty body.
    #[arg(long, env = "ARTICLES_GATEWAY_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: usize,
    /// The longest a request body may take to arrive (default 60s); slower: 408 with code 4
    /// DEADLINE_EXCEEDED. Bodies are read before a concurrency slot is taken.
    #[arg(long, env = "ARTICLES_GATEWAY_BODY_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// The slowest average rate of a request body after its first 5 s, in bytes per second
    /// (default 240, as Kestrel; 0 turns it off); slower: 408.
    #[arg(long, env = "ARTICLES_GATEWAY_MIN_BODY_RATE", default_value_t = DEFAULT_MIN_BODY_RATE)]
    pub min_body_rate: u64,
    /// The largest metadata forwarded to the backend (Authorization, Grpc-Metadata-*, ...), in
    /// bytes as HTTP/2 counts a header list (default 16 KiB, what tonic's and hyper's servers
    /// accept). Larger: 431 with code 3 INVALID_ARGUMENT.
    #[arg(long, env = "ARTICLES_GATEWAY_MAX_METADATA_BYTES", default_value_t = DEFAULT_MAX_METADATA_BYTES)]
    pub max_metadata_bytes: usize,
    /// The largest response message read from the backend, in bytes (default 4 MiB, what gRPC
    /// clients accept by default). Larger: 502 with code 8 RESOURCE_EXHAUSTED.
    #[arg(long, env = "ARTICLES_GATEWAY_MAX_RESPONSE_BYTES", default_value_t = DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
    /// How many bytes of whole answers the gateway may hold, in all, for clients that have
    /// not read them yet (default 256 MiB; answers under 64 KiB are not counted). An answer
    /// that does not fit is 503 with code 14 UNAVAILABLE, at once.
    #[arg(long, env = "ARTICLES_GATEWAY_RESPONSE_BUFFER_LIMIT", default_value_t = DEFAULT_RESPONSE_BUFFER_LIMIT)]
    pub response_buffer_limit: usize,
    /// How long a connection's writes may make no progress, its client reading nothing of
    /// what is sent, before the connection is closed with what it holds (default 60s, nginx's
    /// send_timeout). A stream with nothing to send is not affected.
    #[arg(long, env = "ARTICLES_GATEWAY_SEND_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub send_timeout: Duration,
    /// How long a client may take to send its first byte, and each request's head (default
    /// 30s); slower connections are closed.
    #[arg(long, env = "ARTICLES_GATEWAY_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// How long a connection may go without a byte either way before it is closed (default
    /// 75s, nginx's keepalive_timeout). A request in progress still gets its answer.
    #[arg(long, env = "ARTICLES_GATEWAY_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// How many client connections may be open at once (default 10000); past it, the one idle
    /// the longest is closed for each new one. The open files limit is raised to fit at start.
    #[arg(long, env = "ARTICLES_GATEWAY_MAX_CLIENT_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_client_connections: usize,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs `--tls-key`.
    #[arg(long, env = "ARTICLES_GATEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "ARTICLES_GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How many unary calls (REST, and proxied gRPC calls to unary methods) run at once
    /// (default 1024); more are answered 503 with code 14 UNAVAILABLE at once, not queued.
    /// Streams never take these slots (`--stream-limit`).
    #[arg(long, env = "ARTICLES_GATEWAY_CONCURRENCY_LIMIT", default_value_t = DEFAULT_CONCURRENCY_LIMIT)]
    pub concurrency_limit: usize,
    /// How many long-lived streams are open at once (default 4096): streaming methods over
    /// HTTP (NDJSON, SSE, ...) or a WebSocket, and proxied gRPC streaming calls (or calls to
    /// methods the descriptors do not name). More are answered 503 with code 14 UNAVAILABLE at
    /// once, not queued.
    #[arg(long, env = "ARTICLES_GATEWAY_STREAM_LIMIT", default_value_t = DEFAULT_STREAM_LIMIT)]
    pub stream_limit: usize,
    /// An origin allowed to call from a browser (repeatable). None given: any origin, without
    /// credentials.
    #[arg(
        long = "cors-origin",
        env = "ARTICLES_GATEWAY_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// A query parameter to ignore, such as a cache buster (repeatable).
    #[arg(
        long = "ignore-query-param",
        env = "ARTICLES_GATEWAY_IGNORE_QUERY_PARAMS",
        value_delimiter = ','
    )]
    pub ignore_query_params: Vec<String>,
    /// A JSON body field the request message does not have: `reject` (400 naming it) or
    /// `ignore` (dropped, as grpc-gateway does).
    #[arg(long, env = "ARTICLES_GATEWAY_UNKNOWN_FIELDS", value_enum, default_value_t = Unknown::Reject)]
    pub unknown_fields: Unknown,
    /// A query parameter that names no field: `reject` (400 naming it) or `ignore` (dropped, as
    /// grpc-gateway does).
    #[arg(long, env = "ARTICLES_GATEWAY_UNKNOWN_QUERY_PARAMS", value_enum, default_value_t = Unknown::Reject)]
    pub unknown_query_params: Unknown,
    /// The shape of error bodies: `status` (google.rpc.Status as JSON: code, message,
    /// details; grpc-gateway v2's and Envoy's), `grpc-gateway-v1` (the same plus `error`), or
    /// `problem` (RFC 9457 `application/problem+json`, with `code` and `details`).
    #[arg(long, env = "ARTICLES_GATEWAY_ERROR_FORMAT", value_enum, default_value_t = ErrorFormat::Status)]
    pub error_format: ErrorFormat,
    /// `Cache-Control` of successful GET and HEAD answers of one gRPC method,
    /// `METHOD=VALUE` (`article.v1.ArticleService.ArticleDetail=max-age=60`); repeatable.
    /// Default none. In the environment, entries are separated by `;` (values have commas).
    #[arg(
        long = "cache-control",
        env = "ARTICLES_GATEWAY_CACHE_CONTROL",
        value_delimiter = ';',
        value_name = "METHOD=VALUE"
    )]
    pub cache_control: Vec<String>,
    /// Serve no `/openapi.json` and no `/docs` (an API whose shape is not to be published).
    #[arg(long, env = "ARTICLES_GATEWAY_NO_DOCS")]
    pub no_docs: bool,
    /// Serve no live page at `/` and no live panel on `/docs` (by default they are there when
    /// the API has a server-streaming route and `/` is not one of its routes).
    #[arg(long, env = "ARTICLES_GATEWAY_NO_LIVE_PAGE")]
    pub no_live_page: bool,
}

/// Which API the gateway serves, and how JSON is written.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// A gRPC backend replica, `http://HOST:PORT` or `https://HOST:PORT` (repeatable; calls
    /// are balanced over the healthy ones).
    #[arg(
        long = "backend",
        env = "ARTICLES_GATEWAY_BACKEND",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50051"
    )]
    pub backends: Vec<String>,
    /// A PEM file of CA certificates to trust for `https://` backends, besides the webpki
    /// (Mozilla) roots.
    #[arg(long, env = "ARTICLES_GATEWAY_BACKEND_CA")]
    pub backend_ca: Option<PathBuf>,
    /// Read the descriptors from this encoded FileDescriptorSet instead of the API compiled
    /// into the binary (the article contract's, for `articles-gateway`) (`protoc --include_imports --descriptor_set_out`, `buf build -o`).
    #[arg(
        long,
        env = "ARTICLES_GATEWAY_DESCRIPTOR_SET",
        conflicts_with = "reflect"
    )]
    pub descriptor_set: Option<PathBuf>,
    /// Read the descriptors from the backend's gRPC server reflection at start (and again at
    /// each SIGHUP, and every --reflect-interval).
    #[arg(long, env = "ARTICLES_GATEWAY_REFLECT")]
    pub reflect: bool,
    /// With --reflect: read the descriptors again by reflection this often (`30s`, `5m`) and
    /// serve them if they changed, without a restart. Off by default; SIGHUP reloads at any
    /// time.
    #[arg(long, env = "ARTICLES_GATEWAY_REFLECT_INTERVAL", requires = "reflect", value_parser = parse_positive_duration)]
    pub reflect_interval: Option<Duration>,
    /// A gRPC API Configuration file (a `google.api.Service` document, YAML or JSON, as
    /// grpc-gateway and Cloud Endpoints read it) whose `http.rules` route methods; a rule
    /// replaces its method's annotation. Repeatable; read again at each reload.
    #[arg(
        long = "grpc-api-configuration",
        env = "ARTICLES_GATEWAY_GRPC_API_CONFIGURATION",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub grpc_api_configuration: Vec<PathBuf>,
    /// Route every method that has no rule (annotation or configuration file) at
    /// `POST /{package}.{Service}/{Method}`, the whole request message as body (streaming
    /// methods too). `grpc.reflection.*` and `grpc.health.*` are never mapped.
    #[arg(long, env = "ARTICLES_GATEWAY_AUTO_MAPPING")]
    pub auto_mapping: bool,
    /// Only these services get REST routes: a full name (`pkg.v1.Service`) or a package
    /// prefix (`pkg.*`). Repeatable; default all. Other services stay reachable as gRPC.
    #[arg(
        long = "services",
        env = "ARTICLES_GATEWAY_SERVICES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub services: Vec<String>,
    /// Field names in JSON output: `proto` (`page_size`) or `camel` (`pageSize`).
    #[arg(long, env = "ARTICLES_GATEWAY_JSON_NAMES", value_enum, default_value_t = JsonNames::Proto)]
    pub json_names: JsonNames,
    /// Leave fields that hold their default value out of JSON output.
    #[arg(long, env = "ARTICLES_GATEWAY_OMIT_DEFAULTS")]
    pub omit_defaults: bool,
    /// The OpenAPI document's contact and license (over what the API's own
    /// `openapiv2_swagger` option says).
    #[command(flatten)]
    pub openapi: OpenApiInfoArgs,
}

/// What the OpenAPI document's `info` says beyond the descriptors: who to contact, the license.
#[derive(Debug, Clone, Default, Args)]
pub struct OpenApiInfoArgs {
    /// The API's license in the OpenAPI document: its name, or an SPDX expression such as
    /// `MIT OR Apache-2.0` (also written as the license's identifier).
    #[arg(long, env = "ARTICLES_GATEWAY_OPENAPI_LICENSE")]
    pub openapi_license: Option<String>,
    /// Where the license text is (needs --openapi-license).
    #[arg(
        long,
        env = "ARTICLES_GATEWAY_OPENAPI_LICENSE_URL",
        requires = "openapi_license"
    )]
    pub openapi_license_url: Option<String>,
    /// Who to contact about the API, in the OpenAPI document: a person or organisation.
    #[arg(long, env = "ARTICLES_GATEWAY_OPENAPI_CONTACT_NAME")]
    pub openapi_contact_name: Option<String>,
    /// A web page for the OpenAPI document's contact.
    #[arg(long, env = "ARTICLES_GATEWAY_OPENAPI_CONTACT_URL")]
    pub openapi_contact_url: Option<String>,
    /// An email address for the OpenAPI document's contact.
    #[arg(long, env = "ARTICLES_GATEWAY_OPENAPI_CONTACT_EMAIL")]
    pub openapi_contact_email: Option<String>,
}

impl OpenApiInfoArgs {
    /// Sets the contact and license these flags give on `info`; the others stay.
    pub fn apply(&self, info: &mut crate::openapi::ApiInfo) {
        if let Some(name) = &self.openapi_license {
            info.license = Some(crate::openapi::ApiLicense {
                name: name.clone(),
                url: self.openapi_license_url.clone(),
            });
        }
        if self.openapi_contact_name.is_some()
            || self.openapi_contact_url.is_some()
            || self.openapi_contact_email.is_some()
        {
            info.contact = Some(crate::openapi::ApiContact {
                name: self.openapi_contact_name.clone(),
                url: self.openapi_contact_url.clone(),
                email: self.openapi_contact_email.clone(),
            });
        }
    }
}

impl ApiArgs {
    /// Where routes come from besides the annotations, as these flags say.
    pub fn mapping(&self) -> MappingOptions {
        MappingOptions {
            files: self.grpc_api_configuration.clone(),
            auto: self.auto_mapping,
            services: ServiceFilter::new(self.services.iter().cloned()),
        }
    }

    /// JSON output options of these flags.
    pub fn json_options(&self) -> JsonOptions {
        JsonOptions {
            names: self.json_names,
            emit_defaults: !self.omit_defaults,
        }
    }
}

/// The longest URI the `http` crate parses (`u16::MAX - 1`): a query limit above it could never
/// be reached, so it is refused at start rather than silently meaning less.
pub const MAX_URI_BYTES: usize = 65_534;

/// Parses `--max-query-length`: bytes, at most [`MAX_URI_BYTES`].
///
/// # Errors
/// Not a number, or over [`MAX_URI_BYTES`].
pub fn parse_query_length(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid length {text:?}: expected a number of bytes"))?;
    if n > MAX_URI_BYTES {
        return Err(format!(
            "{n} bytes can never be reached: a URI is at most {MAX_URI_BYTES} bytes (the limit \
             of the http crate, which parses it)"
        ));
    }
    Ok(n)
}

/// Parses a duration as humantime does (`500ms`, `1.5s`, `2m`, `1h 30m`), or a
/// bare number of seconds. The service's flags use this one too, so both read the same grammar.
///
/// # Errors
/// A message for clap when the text is none of those.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    // A bare number is seconds, as it always was here; humantime itself wants a unit.
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?}: {e} (e.g. 500ms, 30s, 2m, 1h 30m)"))
}

/// Parses a duration ([`parse_duration`]) that must not be zero (an interval).
///
/// # Errors
/// What [`parse_duration`] refuses, and zero.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?}: an interval must be longer than zero"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_limit_no_uri_can_reach_is_refused_at_start() {
        let parse = |n: &str| Cli::try_parse_from(["articles-gateway", "--max-query-length", n]);
        assert!(parse("65534").is_ok());
        let err = parse("100000")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("at most 65534 bytes"), "{err}");
    }

    #[test]
    fn serve_is_the_default_subcommand() {
        let cli = Cli::try_parse_from(["articles-gateway", "--listen", "127.0.0.1:9", "--reflect"]);
        let cli = match cli {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.port(), 9);
        assert!(cli.serve.api.reflect);
        assert_eq!(cli.serve.http.error_format, ErrorFormat::Status);
        assert_eq!(cli.serve.http.unknown_fields, Unknown::Reject);
    }

    #[test]
    fn migration_switches_take_their_documented_values() {
        let cli = Cli::try_parse_from([
            "articles-gateway",
            "--unknown-fields",
            "ignore",
            "--unknown-query-params",
            "ignore",
            "--error-format",
            "grpc-gateway-v1",
        ]);
        let cli = match cli {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cli.serve.http.unknown_fields, Unknown::Ignore);
        assert_eq!(cli.serve.http.unknown_query_params, Unknown::Ignore);
        assert_eq!(cli.serve.http.error_format, ErrorFormat::GrpcGatewayV1);
        for format in ["status", "problem"] {
            assert!(Cli::try_parse_from(["articles-gateway", "--error-format", format]).is_ok());
        }
        assert!(Cli::try_parse_from(["articles-gateway", "--error-format", "xml"]).is_err());
    }

    #[test]
    fn a_reflect_interval_needs_reflect_and_a_length() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("articles-gateway").chain(args.iter().copied()))
        };
        let cli = match parse(&["--reflect", "--reflect-interval", "30s"]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            cli.serve.api.reflect_interval,
            Some(Duration::from_secs(30))
        );
        assert!(parse(&["--reflect-interval", "30s"]).is_err());
        assert!(parse(&["--reflect", "--reflect-interval", "0s"]).is_err());
        let cli = match parse(&["--reflect"]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cli.serve.api.reflect_interval, None);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("ms").is_err());
    }
}
