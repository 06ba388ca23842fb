//! The gateway's default limits and deadlines, in one place: the builder ([`crate::app`]), the
//! connection server ([`crate::server`]) and the command line ([`crate::config`]) all start
//! from them, so none of the three has to import another for its defaults.

use std::time::Duration;

/// The default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// The default limit on a query string's length, in bytes as sent: 8 KiB.
pub const DEFAULT_MAX_QUERY_LENGTH: usize = 8 * 1024;
/// The default limit on the metadata forwarded to the backend: 16 KiB, the header list size
/// tonic's (hyper's) HTTP/2 server accepts by default.
pub const DEFAULT_MAX_METADATA_BYTES: usize = 16 * 1024;
/// The default time a whole request body may take to arrive (nginx's `client_body_timeout`).
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The default slowest average rate of a request body, in bytes per second (Kestrel's).
pub const DEFAULT_MIN_BODY_RATE: u64 = 240;
/// How long a body may arrive slower than the minimum rate before it is refused (Kestrel's).
pub const DEFAULT_BODY_RATE_GRACE: Duration = Duration::from_secs(5);
/// The default number of unary calls (REST and proxied gRPC) at once before new ones are shed.
pub const DEFAULT_CONCURRENCY_LIMIT: usize = 1024;
/// The default number of long-lived streams (SSE, NDJSON, WebSocket, proxied gRPC streams) at
/// once before new ones are shed: room for thousands of idle watchers, while an HTTP/1.1
/// watcher's connection each still leaves most of the default 10,000 client connections
/// ([`DEFAULT_MAX_CONNECTIONS`]) to unary clients.
pub const DEFAULT_STREAM_LIMIT: usize = 4096;
/// The default most HTTP/2 connections to each backend replica for streams: 16. Each carries
/// up to 100 streams (fewer if the backend allows fewer: 64 for many servers), so 1,024 to
/// 1,600 streams per replica; and the bytes held for streams whose clients stop reading stay
/// bounded (64 KiB each, 100 MiB at most per replica).
pub const DEFAULT_BACKEND_STREAM_CONNECTIONS: usize = 16;
/// The default deadline of a call when the client sends no `Grpc-Timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default deadline of a streaming call when the client sends no `Grpc-Timeout`.
pub const DEFAULT_STREAM_TIMEOUT: Duration = Duration::from_secs(3600);
/// The default time between two keep-alive comments on an idle Server-Sent Events stream:
/// well inside the 60 s after which proxies and load balancers cut a silent stream.
pub const DEFAULT_SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// The default limit on a request's head (request line and headers), in bytes: 64 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The default time in-flight requests get to finish once shutdown starts: 30 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time a client may take to send a request's head (and its first byte).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time a connection may stay without traffic: nginx's `keepalive_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// The default number of client connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The default time a connection's writes may make no progress (its client reads nothing)
/// before it is closed: nginx's `send_timeout`.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The default budget of whole answers held for clients that have not read them yet
/// ([`crate::buffers`]): 64 answers of the largest size a backend may send (4 MiB).
pub const DEFAULT_RESPONSE_BUFFER_LIMIT: usize = 256 * 1024 * 1024;

/// How many levels messages may nest in a request or a written response: protobuf's own
/// decoders stop at 100 (prost's and C++'s recursion limit), and every recursive reader and
/// writer of messages must stop before a worker's stack does (see `transcode::depth`). Fixed,
/// not a flag: a backend's decoder refuses anything deeper anyway.
pub const MAX_MESSAGE_DEPTH: usize = 100;
