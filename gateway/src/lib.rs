//! A generic gRPC-to-REST gateway (the class of grpc-gateway and Envoy's gRPC-JSON
//! transcoder): routes come from the `google.api.http` annotations of the API's descriptors,
//! never from per-method code.
//!
//! - [`GatewayBuilder`] builds an axum router from a descriptor pool and a
//!   [`backend::Backend`] (a remote channel, or any in-memory gRPC service);
//! - [`server::serve`] serves a router on a listener; [`server::run`] is the binary's entry.
//!
//! Modules: [`template`] (path templates), [`rules`] (bindings read from descriptors),
//! [`routes`] (the route table and matching), [`transcode`] (HTTP <-> messages, `HttpBody`),
//! [`admission`] (the unary and stream budgets calls are admitted against),
//! [`conditional`] (ETags, `If-None-Match`, `If-Match`, `Cache-Control` per method),
//! `calls` (what unary and streaming calls share), `detach` (calls a hang-up does not cancel),
//! `stream` (streaming methods over HTTP and
//! WebSocket), [`backend`] (the generic call: deadline, retries, balancing, health),
//! [`metadata`] (headers <-> metadata and trailers), [`error`] (the request error, its HTTP
//! mapping and formats), [`constraints`] (field rules from the descriptors, checked and
//! documented), [`json`] (output options), [`limits`] (default limits and deadlines),
//! [`live`] (the page at `/` showing the API's streams live),
//! [`descriptors`] (loading, standard types), [`served`] (the served API, swapped whole),
//! [`reload`] (reading the descriptors again: interval, SIGHUP, replicas),
//! [`config`] (the command line), [`startup`] (why the gateway could not start).

// Library code states why an `expect` cannot fail, in an `#[expect]` with a reason (the
// workspace does not turn this on: the service's tests expect freely); unit tests expect freely.
#![cfg_attr(not(test), warn(clippy::expect_used))]

pub mod admission;
pub mod app;
pub mod backend;
pub mod buffers;
mod calls;
pub mod conditional;
pub mod config;
mod connect;
pub mod constraints;
pub mod descriptors;
mod detach;
pub mod error;
mod grpc_proxy;
pub mod json;
pub mod limits;
pub mod live;
pub mod metadata;
pub mod metrics;
pub mod openapi;
mod probes;
pub mod reload;
pub mod request_id;
pub mod routes;
pub mod rules;
pub mod served;
pub mod server;
pub mod startup;
mod stream;
pub mod template;
pub mod transcode;

pub use app::{BuildError, CorsOrigins, GatewayBuilder, Reloader};
pub use backend::{Backend, BalanceOptions};
pub use error::Error;
pub use server::{run, serve};
pub use startup::StartError;
