//! The article contract, compiled.
//!
//! `proto/article/v1/article.proto` is compiled by this crate's `build.rs` (protox, no system
//! `protoc`). This crate exports
//! - the generated prost messages and tonic client/server for `article.v1` ([`article::v1`]),
//! - the `google.api.http` types ([`google::api`]), and
//! - [`FILE_DESCRIPTOR_SET`], the encoded descriptors with imports, source info (comments) and
//!   every custom option kept, which the service serves over reflection and the gateway
//!   reads its routes and OpenAPI documentation from.

include!(concat!(env!("OUT_DIR"), "/protos.rs"));

/// The encoded `google.protobuf.FileDescriptorSet` of `proto/`, imports included.
///
/// These are protox's own bytes, never re-encoded through `prost_types`, so extension options
/// such as `google.api.http` survive.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

/// The fully-qualified name of the article service.
pub const ARTICLE_SERVICE: &str = "article.v1.ArticleService";

/// The service name a client generated from the tutorial's unpackaged `article.proto` calls.
pub const LEGACY_ARTICLE_SERVICE: &str = "ArticleService";
