//! Integration tests of the gateway: real servers on `127.0.0.1:0`, real sockets, reqwest.
//!
//! - `articles`: end to end with the real article service (channel, in memory, reflection).
//! - `routing`: route kinds and matching; `mapping`: request mapping and its 400s;
//!   `responses`: JSON output, `response_body`, metadata, compression; `errors`: status
//!   mapping, deadlines, an unreachable backend, load shedding; `ops`: probes, CORS, docs,
//!   the binary, the in-memory backend.
//! - `support`: the `library.v1` fixture, the echo backend, spawn helpers.

mod articles;
mod errors;
mod mapping;
mod ops;
mod responses;
mod routing;
mod support;
