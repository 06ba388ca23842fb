//! Integration tests of the article service: real servers on `127.0.0.1:0`, real sockets, real
//! clients, all started through [`support::Stack`].
//!
//! - `grpc_api`: the gRPC contract on SQLite and PostgreSQL; `reflection`: reflection v1 and
//!   v1alpha; `grpcurl`, `tutorial_client`: clients no one here wrote; `cli`: the binaries.
//! - `rest`: the gateway in front of the service (in the binary and as a library); `faults_*`:
//!   bad input and a backend going down; `scaleout`: replicas behind a balanced gateway;
//!   `oneport`: gRPC and gRPC-Web through the gateway's port, gRPC-Web on the service's.
//! - `grpc_port`: the gRPC port's connection guards (timeouts, cap, open files limit).
//! - `availability`, `disk_full`, `scale`, `django`, `operations`: locked, unreachable and
//!   full databases, replicas on one database, Django-made databases, metrics and request ids.
//! - `watch`: WatchArticles, across replicas, on both databases.
//! - `support`: the test databases and the `Stack` builder.

mod availability;
mod cli;
mod disk_full;
mod django;
mod faults_backend_restart;
mod faults_bad_input;
mod grpc_api;
mod grpc_port;
mod grpcurl;
mod oneport;
mod operations;
mod reflection;
mod rest;
mod scale;
mod scaleout;
mod support;
mod tutorial_client;
mod watch;
