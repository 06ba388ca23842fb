//! Integration tests of the gateway: real servers on `127.0.0.1:0`, real sockets, reqwest.
//!
//! - `routing`: route kinds and matching; `mapping`: request mapping and its 400s;
//!   `responses`: JSON output, `response_body`, metadata, compression; `errors`: status
//!   mapping, deadlines, an unreachable backend, load shedding; `ops`: probes, CORS, docs,
//!   the binary, the in-memory backend; `scaleout`: several replicas, health, retries,
//!   reflection from the first replica, metrics, request ids, TLS to backends.
//! - `sensors`: in front of a backend that is not ours in spirit (`telemetry.v1`: no health
//!   service, no reflection, trailers, google.rpc details, float extremes, open enums):
//!   deadlines, metadata, error details and formats, proto3 JSON edge values, system
//!   parameters, content types, migration switches, reflection v1alpha, over HTTP/1.1 and 2;
//!   (`sensors::oneport`) gRPC and gRPC-Web clients through the gateway's one port;
//!   (`sensors::connect`) the Connect protocol on that port, from Rust and from Connect's
//!   node and browser clients; (`sensors::capacity`) the backend's stream slots, windows and
//!   upload pacing; (`sensors::statuses`) success statuses other than 200 (declared, or
//!   `x-http-code`); (`sensors::uploads`) `multipart/form-data` uploads, 50 MiB streamed in
//!   flat memory, and Swagger UI's file picker in headless Chromium.
//! - `validation`: `buf.validate` rules checked before the call (`accounts.v1`, its own fixture
//!   in front of the echo backend): 400 with a `google.rpc.BadRequest` listing each field.
//! - `reload`: descriptors read again without a restart (`inventory.v1`, two versions of one
//!   file): `--reflect-interval`, SIGHUP, failures, streams across a swap, replicas that
//!   disagree, the version in `/metrics` and `/readyz`.
//! - `depth`: how deep a request or response may nest (`nesting.v1`, a recursive message, in
//!   front of the echo backend): past protobuf's 100 levels, a 400 naming the field.
//! - `any_api`: an API with no annotation (`tally.v1`) served with zero configuration
//!   (reflection v1alpha, auto-mapping), OTLP's collector through a gRPC API Configuration
//!   file, a file's rule replacing an annotation, each file error, reload of the files,
//!   `--services`.
//! - `conditional`: ETags per content coding, `If-None-Match` 304s, `If-Match` into the
//!   AIP-154 `etag` field or a 400, `--cache-control` (`library.v1`, `tally.v1`).
//! - `partial`: `fields` and `X-Goog-FieldMask` on unary answers and streams.
//! - `support`: the `library.v1` fixture, the echo backend, spawn helpers.

mod any_api;
mod conditional;
mod depth;
mod errors;
mod faults;
mod mapping;
mod ops;
mod partial;
mod props;
mod reload;
mod responses;
mod routing;
mod scaleout;
mod sensors;
mod support;
mod tls;
mod validation;
