//! A generic gRPC-to-REST gateway.

pub mod rules;
pub mod template;
