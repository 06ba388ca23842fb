//! A generic gRPC-to-REST gateway.

pub mod json;
pub mod rules;
pub mod template;
