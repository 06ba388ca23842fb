//! The article contract, compiled.
//!
//! `proto/article/v1/article.proto` is compiled by this crate's `build.rs` (protox, no system
//! `protoc`). This crate exports
//! - the generated prost messages and tonic client/server for `article.v1` ([`article::v1`]),
//! - the `google.api.http` types ([`google::api`]), and
//! - [`FILE_DESCRIPTOR_SET`], the encoded descriptors with imports, source info (comments) and
//!   every custom option kept, which the service serves over reflection and the gateway
//!   reads its routes and OpenAPI documentation from, and
//! - [`STANDARD_DESCRIPTOR_SET`], the standard error and well-known types, which the gateway
//!   adds to any API's descriptors so that error details always render as JSON.

include!(concat!(env!("OUT_DIR"), "/protos.rs"));

/// The encoded `google.protobuf.FileDescriptorSet` of `proto/`, imports included.
///
/// These are protox's own bytes, never re-encoded through `prost_types`, so extension options
/// such as `google.api.http` survive.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

/// The encoded `FileDescriptorSet` of the standard types a gRPC API may answer without
/// declaring them: `google/rpc/status.proto`, `google/rpc/error_details.proto` and the
/// well-known types (`google/protobuf/*.proto`), imports first.
pub const STANDARD_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/standard_set.bin"));

/// The fully-qualified name of the article service.
pub const ARTICLE_SERVICE: &str = "article.v1.ArticleService";

/// The service name a client generated from the tutorial's unpackaged `article.proto` calls.
pub const LEGACY_ARTICLE_SERVICE: &str = "ArticleService";
