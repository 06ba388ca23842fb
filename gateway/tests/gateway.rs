//! Integration tests of the gateway: real servers on `127.0.0.1:0`, real sockets, reqwest.
//!
//! - `routing`: route kinds and matching; `mapping`: request mapping and its 400s;
//!   `responses`: JSON output, `response_body`, metadata, compression; `errors`: status
//!   mapping, deadlines, an unreachable backend, load shedding; `ops`: probes, CORS, docs,
//!   the binary, the in-memory backend; `scaleout`: several replicas, health, retries,
//!   reflection from the first replica, metrics, request ids, TLS to backends.
//! - `support`: the `library.v1` fixture, the echo backend, spawn helpers.

mod errors;
mod faults;
mod mapping;
mod ops;
mod props;
mod responses;
mod routing;
mod scaleout;
mod support;
mod tls;
